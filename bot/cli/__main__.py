"""`python -m bot.cli`: the `imagine` command."""

import sys

from bot.cli import main

sys.exit(main())
