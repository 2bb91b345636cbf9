"""``python -m silenttax``: the same as the ``silenttax`` command."""

import sys

from silenttax.cli import main

if __name__ == "__main__":
    sys.exit(main())
