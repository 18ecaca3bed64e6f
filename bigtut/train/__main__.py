"""``python -m bigtut.train`` (see :mod:`bigtut.train.cli`)."""

import sys

from bigtut.train.cli import main

sys.exit(main())
