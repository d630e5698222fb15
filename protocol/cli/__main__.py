"""``python -m protocol.cli``: the ``helpline`` command."""

import sys

from . import main

sys.exit(main())
