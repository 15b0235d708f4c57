"""``python -m pymdpbench``: the same as the ``pymdpbench`` command."""

import sys

from pymdpbench.cli import main

sys.exit(main())
