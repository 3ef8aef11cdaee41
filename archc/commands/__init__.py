"""What each ``archc`` command does, given its parsed arguments (``cli`` parses them, runs one, and turns what it
raises into a message and an exit status): check, build and fmt (``build``), stats and draw (``show``)."""

from .build import build, check, fmt
from .common import EXIT_INTERNAL, EXIT_SPEC, EXIT_USAGE, Exit, parse_size
from .show import draw, stats

__all__ = ["EXIT_INTERNAL", "EXIT_SPEC", "EXIT_USAGE", "Exit", "build", "check", "draw", "fmt", "parse_size", "stats"]
