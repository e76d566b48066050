"""The QUIC engines (aioquic, qh3): the only package that imports either library."""
