"""The Python environment that runs `cosa-edge serve`'s Triton server, apart from cosa-edge's own.

Why a second environment: PyTriton (``nvidia-pytriton``, which bundles the ``tritonserver`` binary) requires
numpy < 2, while the OpenCV cosa-edge reads video with requires numpy >= 2. The server needs neither OpenCV nor
torch: it runs an engine (cosa_edge.engines: numpy, onnx, onnxruntime). So `serve` creates, once, a virtual
environment with PyTriton, numpy 1.x and the same onnx and onnxruntime versions as this one, from the same
interpreter as the running Python (PyTriton's Python-backend stub must load that interpreter's libpython),
and runs the server there with this cosa-edge's own source on its path (a link to the package, never a copy).

Where: ``$COSA_EDGE_SERVER_ENV``, else ``$XDG_CACHE_HOME/cosa-edge`` (``~/.cache/cosa-edge``), one folder per
Python version. A marker file written last records what was installed; a folder without it (an interrupted
creation) or with other requirements is made again.

Standard library only: this module runs before anything heavy is installed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata as distributions
from pathlib import Path

from ..errors import CosaEdgeError

PYTRITON_REQUIREMENT = "nvidia-pytriton==0.7.0"  # pinned: serve/pytriton_server.py relies on its behaviour
NUMPY_REQUIREMENT = "numpy>=1.26,<2"  # PyTriton 0.7 requires numpy < 2
MARKER = "cosa-edge-server-env.json"
#: The oldest glibc PyTriton's bundled server runs on (its wheel is manylinux_2_35).
MIN_GLIBC = (2, 35)


@dataclass(frozen=True)
class ServerEnv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"


def default_location() -> Path:
    chosen = os.environ.get("COSA_EDGE_SERVER_ENV")
    if chosen:
        return Path(chosen).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "cosa-edge" / f"triton-server-py{sys.version_info.major}.{sys.version_info.minor}"


def requirements() -> list[str]:
    """What the server's environment holds: PyTriton, numpy 1.x, and this environment's onnx and onnxruntime
    versions (so that the served engine computes what the local one does)."""
    wanted = [PYTRITON_REQUIREMENT, NUMPY_REQUIREMENT]
    for name in ("onnx", "onnxruntime"):
        try:
            wanted.append(f"{name}=={distributions.version(name)}")
        except distributions.PackageNotFoundError:
            wanted.append(name)
    return wanted


def check_platform() -> None:
    """PyTriton's server binary is built for Linux with glibc 2.35 or newer."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
        raise CosaEdgeError(f"`cosa-edge serve` runs PyTriton's Triton server, built for Linux on x86_64 or aarch64, "
                            f"not {sys.platform}/{platform.machine()}; export a model repository with "
                            "`cosa-edge export-triton` and serve it in NVIDIA's Triton container instead")
    libc = (os.confstr("CS_GNU_LIBC_VERSION") or "") if hasattr(os, "confstr") else ""
    name, _, version = libc.partition(" ")
    try:
        found = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        found = ()
    if name != "glibc" or found < MIN_GLIBC:
        raise CosaEdgeError(f"PyTriton's Triton server needs glibc {'.'.join(map(str, MIN_GLIBC))} or newer; this "
                            f"system has {libc or 'no glibc'}. Serve the `cosa-edge export-triton` repository in "
                            "NVIDIA's Triton container instead")


def base_interpreter() -> Path:
    """The interpreter this Python runs on (outside any virtual environment): the server's environment is
    made from it, so that its libpython is the one PyTriton's stub loads."""
    return Path(getattr(sys, "_base_executable", None) or sys.executable)


def _installed(root: Path) -> dict | None:
    try:
        return json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None


def ensure_server_env(root: Path | None = None, notify: Callable[[str], None] = lambda _line: None) -> ServerEnv:
    """The server's environment at ``root`` (default: :func:`default_location`), made first if needed."""
    check_platform()
    env = ServerEnv(Path(root) if root else default_location())
    wanted = {"requirements": requirements(), "interpreter": str(base_interpreter()),
              "python": platform.python_version()}
    if _installed(env.root) == wanted and env.python.exists():
        return env
    env.root.parent.mkdir(parents=True, exist_ok=True)
    with open(env.root.parent / f".{env.root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two servers starting at once: one creates, the other waits and uses it
        if _installed(env.root) == wanted and env.python.exists():
            return env
        notify(f"creating the Triton server's Python environment in {env.root} (once; about a minute): "
               + " ".join(wanted["requirements"]))
        _clear_for_creation(env.root)
        _run([str(base_interpreter()), "-m", "venv", str(env.root)], "create a virtual environment", env.root)
        _run([str(env.python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q",
              *wanted["requirements"]], "install " + " ".join(wanted["requirements"]), env.root)
        (env.root / MARKER).write_text(json.dumps(wanted, indent=2))  # last: only a complete environment has it
    return env


def _clear_for_creation(root: Path) -> None:
    """Remove an outdated or half-made server environment, and nothing else: a folder that is neither empty nor a
    virtual environment (a mistyped --server-env pointing at someone's files) is refused, never deleted."""
    if not root.exists():
        return
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
        return
    if not (root / "pyvenv.cfg").is_file():
        raise CosaEdgeError(f"{root} exists and is not a Python environment; give --server-env (or "
                            "COSA_EDGE_SERVER_ENV) a new or empty folder for the Triton server's environment")
    shutil.rmtree(root)


def _run(command: list[str], what: str, root: Path) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        said = [line for line in (result.stderr or result.stdout).splitlines()
                if line.strip() and not line.startswith("WARNING: Location")]
        raise CosaEdgeError(f"could not {what} for the Triton server in {root}: "
                            f"{said[-1] if said else 'exit status ' + str(result.returncode)}. It needs PyPI once "
                            "(or an index given by PIP_INDEX_URL); COSA_EDGE_SERVER_ENV chooses another folder")


def package_path(env: ServerEnv) -> Path:
    """A folder holding only a link to this cosa-edge package, for the server's PYTHONPATH: the server runs
    this very source, and no other package of this environment (numpy 2, OpenCV) leaks into it."""
    package = Path(__file__).resolve().parents[1]
    folder = env.root / "cosa-edge-source" / hashlib.sha256(str(package).encode()).hexdigest()[:16]
    link = folder / package.name
    if not (link.is_symlink() and link.resolve() == package):
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{package.name}.{os.getpid()}"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(package, target_is_directory=True)
        os.replace(temporary, link)
    return folder


def process_environment(env: ServerEnv) -> dict[str, str]:
    """Environment variables for the server's process.

    LD_LIBRARY_PATH starts with the interpreter's own library folder: PyTriton's Python-backend stub links
    ``libpython3.X.so``, and where the system has another build of the same version (a pyenv Python on
    Debian) the system's would load and fail (``'_thread.RLock' object has no attribute '_recursion_count'``).
    """
    variables = dict(os.environ)
    library_dir = sysconfig.get_config_var("LIBDIR") or ""
    variables["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (library_dir, os.environ.get("LD_LIBRARY_PATH")) if p)
    variables["PYTHONPATH"] = str(package_path(env))
    variables["PYTHONNOUSERSITE"] = "1"
    variables.pop("PYTHONHOME", None)
    return variables
