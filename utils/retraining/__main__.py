"""``python -m utils.retraining``: see :mod:`utils.retraining.cli`."""

import sys

from utils.retraining.cli import main

sys.exit(main())
