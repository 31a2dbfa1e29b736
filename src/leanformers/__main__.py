"""``python -m leanformers``: the command line (see leanformers.cli)."""

import sys

from .cli import main

sys.exit(main())
