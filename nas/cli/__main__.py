"""`python -m nas.cli` runs the `nas` command (as `python -m nas` does)."""
import sys

from nas.cli.main import main

sys.exit(main())
