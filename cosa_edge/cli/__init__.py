"""The ``cosa-edge`` command line: thin commands over the library, one module per kind of work.

``app`` holds the group (errors a user can fix become one line) and the entry point, ``options`` the option groups
several commands share; each command module registers its commands on the group when it is imported below. Heavy
libraries (torch, onnxruntime, tensorrt) are imported inside the commands that need them, so ``cosa-edge --help``
and the deploy commands work on a machine without a training stack.

Where a change goes: a new command in the module of its kind of work (or a new module imported here); an option
two commands share in ``options``; anything beyond reading options and printing results in the library.
"""

from __future__ import annotations

from . import bench, export, infer, phantom, serving, training  # noqa: F401  (importing registers the commands)
from .app import cli, main

__all__ = ["cli", "main"]
