"""Allow `python -m snakes_web`."""
import sys

from snakes_web.tools.cli import main

sys.exit(main())
