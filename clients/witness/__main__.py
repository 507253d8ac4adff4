"""``python -m clients.witness --config witness.toml``."""

import sys

from clients.witness.main import main

sys.exit(main())
