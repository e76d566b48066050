"""``python -m bench report|sim ...``: the benchmark report, or one simulator run."""

from __future__ import annotations

import sys

from bench.entry import main

sys.exit(main(sys.argv[1:]))
