"""``python -m janusvln_ros.cli``: the same as the ``janusvln`` console script."""

import sys

from janusvln_ros.cli import main

sys.exit(main())
