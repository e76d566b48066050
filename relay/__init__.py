"""The store-and-forward relay: sealed envelopes kept for nodes that are away, and its client."""
