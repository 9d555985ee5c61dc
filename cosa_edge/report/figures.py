"""Writing a matplotlib figure as a PNG, atomically, for every plot the reports carry."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_bytes


def save_png(figure: Any, path: Path) -> Path:
    """Lay the figure out, write it to ``path`` (complete or not at all) and release it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
