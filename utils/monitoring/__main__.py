"""``python -m utils.monitoring``: the command line of :mod:`utils.monitoring.cli`."""

import sys

from utils.monitoring.cli import main

sys.exit(main())
