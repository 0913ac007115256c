"""``python -m trackwire.drivers``: the ``trackwire`` command line."""

import sys

from ._cli import main

sys.exit(main())
