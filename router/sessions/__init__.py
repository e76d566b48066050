"""End-to-end sessions: QUIC over overlay datagrams, with certificates for the nodes' ed25519 keys."""
