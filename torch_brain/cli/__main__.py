import sys

from torch_brain.cli import main

sys.exit(main())
