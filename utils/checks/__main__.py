"""``python -m utils.checks``: the command line of :mod:`utils.checks.cli`."""

import sys

from utils.checks.cli import main

sys.exit(main())
