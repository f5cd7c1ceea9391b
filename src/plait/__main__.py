"""``python -m plait``: the same as the ``plait`` command."""

import sys

from ._cli import main

sys.exit(main())
