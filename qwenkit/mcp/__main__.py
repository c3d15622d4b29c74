"""``python -m qwenkit.mcp serve ...``: see `qwenkit.mcp.cli`."""

import sys

from qwenkit.mcp.cli import main

sys.exit(main())
