"""End-to-end tests that run real Matrix homeservers."""
