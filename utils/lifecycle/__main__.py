"""``python -m utils.lifecycle``: see :mod:`utils.lifecycle.cli`."""

import sys

from utils.lifecycle.cli import main

sys.exit(main())
