"""``python -m equivox`` = the ``equivox`` command."""
import sys

from .cli import main

sys.exit(main())
