"""``python -m pulpo_core`` runs the ``pulpo`` command."""

import sys

from pulpo_core.cli import main

sys.exit(main())
