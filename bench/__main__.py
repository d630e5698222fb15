"""``python -m bench``: run the benchmark scenarios; ``--help`` lists them and every option."""

from __future__ import annotations

import sys

from ._run import main

if __name__ == "__main__":
    sys.exit(main())
