"""``python -m bench.sim``: run one simulator scenario."""

from __future__ import annotations

import sys

from bench.sim.cli import main

sys.exit(main())
