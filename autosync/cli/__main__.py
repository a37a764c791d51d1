"""`python -m autosync.cli …` runs the console script."""

import sys

from autosync.cli.entry import main

sys.exit(main())
