"""`python -m mailfilter`."""

import sys

from mailfilter.cli import main

sys.exit(main())
