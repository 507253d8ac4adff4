"""``python -m exchange.program``: the ``trustwire`` program."""

import sys

from exchange.program.cli import main

sys.exit(main())
