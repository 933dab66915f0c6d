"""``python -m utils.batch``: the command line of :mod:`utils.batch.cli`."""

import sys

from utils.batch.cli import main

sys.exit(main())
