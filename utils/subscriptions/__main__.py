import sys

from utils.subscriptions.cli import main

sys.exit(main())
