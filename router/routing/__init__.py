"""The routing core: one node's spanning tree, snake and forwarding, as a state machine without I/O."""
