"""``python -m cosa_edge.cli``: the same as the ``cosa-edge`` command."""

from . import main

main()
