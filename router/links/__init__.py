"""Links: the byte streams that carry the Pinecone handshake and frames between peers."""
