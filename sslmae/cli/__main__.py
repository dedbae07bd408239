"""`python -m sslmae.cli` (torchrun's entry point in multi-node pods)."""

import sys

from sslmae.cli.main import main

sys.exit(main())
