"""``python -m ganlab`` is the ``ganlab`` command."""

import sys

from ganlab.cli import main

sys.exit(main())
