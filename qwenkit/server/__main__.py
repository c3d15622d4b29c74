"""``python -m qwenkit.server``: the agent server on the embedded default model."""

import sys

from qwenkit.server.cli import main

sys.exit(main())
