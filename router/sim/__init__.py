"""The in-memory mesh: routing cores on simulated links and a virtual clock, and graphs."""
