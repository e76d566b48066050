"""The simulator: many routing cores on the in-memory mesh, under scenarios, measured.

``python -m bench.sim --help`` (or ``pinewood bench sim``) runs one scenario on
one graph and prints or writes its figures as JSON; :mod:`bench.report` runs a
set of them and writes the benchmark report.
"""
