"""Pinewood's benchmarks: micro-benchmarks (pytest-benchmark), the simulator and the report."""
