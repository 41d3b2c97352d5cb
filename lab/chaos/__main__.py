"""`python -m lab.chaos`: see lab.chaos.run."""
import sys

from lab.chaos.run import main

sys.exit(main())
