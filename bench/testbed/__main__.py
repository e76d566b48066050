"""``python -m bench.testbed``: see :mod:`bench.testbed.cli`."""

from __future__ import annotations

import sys

from bench.testbed.cli import main

sys.exit(main(sys.argv[1:]))
