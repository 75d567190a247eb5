"""`python -m nas` (and `torchrun ... -m nas`) is the `nas` command."""
import sys

from nas.cli import main

sys.exit(main())
