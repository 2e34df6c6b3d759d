import sys

from tinygrad_fnn.cli import main

sys.exit(main())
