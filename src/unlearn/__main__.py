"""`python -m unlearn ...` (also `accelerate launch -m unlearn ...`): the `unlearn` command."""

import sys

from .cli import main

sys.exit(main())
