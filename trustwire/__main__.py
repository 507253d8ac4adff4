"""``python -m trustwire``: the ``trustwire`` program."""

import sys

from trustwire.cli import main

sys.exit(main())
