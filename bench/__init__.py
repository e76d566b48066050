"""Pinewood's benchmarks: micro-benchmarks (pytest-benchmark) and, later, the simulator."""
