"""What the node knows of Matrix federation: server names that stand for node
keys, and which requests are the server-server API that a homeserver beside a
router is to be offered."""
