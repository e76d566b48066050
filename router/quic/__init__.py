"""The QUIC engine: aioquic, with what the project needs beyond its public API."""
