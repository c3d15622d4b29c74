"""`python -m qwenkit ...` runs the `qwenkit` command (useful where the console script is not on PATH)."""

import sys

from qwenkit.cli import main

sys.exit(main())
