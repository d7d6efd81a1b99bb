"""`python -m backprop ...` runs the command line (see backprop/cli.py)."""

import sys

from .cli import main

sys.exit(main())
