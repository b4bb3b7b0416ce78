"""Allow `python -m snakes_web`."""
import sys

from .cli import main

sys.exit(main())
