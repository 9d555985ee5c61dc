"""Entry point of one torchrun worker: ``python -m cosa_edge.train.worker RUN_DIR/launch.json``."""

import sys

from ..errors import CosaEdgeError
from .runner import run_from_launch_file

if __name__ == "__main__":
    try:
        run_from_launch_file(sys.argv[1])
    except CosaEdgeError as error:
        print(f"Error: {error}", file=sys.stderr)
        sys.exit(1)
