"""The deploy side imports without torch: an edge box has an inference runtime, not a training stack.

Two checks: importing the deploy modules loads no heavy library (a run-time check), and no module of
the runtime side names the training side in any import, however deep or lazy (a static check, so that
an import inside a function that no test calls is caught too).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY_MODULES = ["cosa_edge", "cosa_edge.cli", "cosa_edge.data", "cosa_edge.data.phantom", "cosa_edge.data.splits",
                  "cosa_edge.metrics", "cosa_edge.kernels.reference", "cosa_edge.config", "cosa_edge.report.tables",
                  "cosa_edge.report.roc", "cosa_edge.contract", "cosa_edge.engines", "cosa_edge.engines.build",
                  "cosa_edge.evaluation", "cosa_edge.evaluation.comparison", "cosa_edge.engines.fp16",
                  "cosa_edge.stream.run", "cosa_edge.stream.pipeline", "cosa_edge.bench.runner",
                  "cosa_edge.bench.report", "cosa_edge.kernels.cuda",
                  "cosa_edge.engines.onnxruntime_engine", "cosa_edge.engines.tensorrt_engine", "cosa_edge.backends",
                  "cosa_edge.engines.int8", "cosa_edge.evaluation.accuracy", "cosa_edge.engines.quantized_build",
                  "cosa_edge.engines.openvino_engine", "cosa_edge.bench.scores", "cosa_edge.bench.flops",
                  "cosa_edge.serve.triton_repo", "cosa_edge.serve.triton_preprocess", "cosa_edge.serve.client",
                  "cosa_edge.serve.local_server", "cosa_edge.serve.server_env", "cosa_edge.serve.pytriton_server",
                  "cosa_edge.bench.load", "cosa_edge.bench.load_report", "cosa_edge.bench.session",
                  "cosa_edge.fuzz.runner", "cosa_edge.fuzz.outcomes", "cosa_edge.fuzz.cases"]

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "cosa_edge"
#: The runtime side: what an edge box runs. The contract module is shared by both sides, so it is held to the same rule.
RUNTIME_SIDE = ["engines", "evaluation", "stream", "bench", "data", "serve", "contract.py"]
#: The training side, and cosa_edge.backends, which sits above both sides and reaches into export for .pt files.
FORBIDDEN = ("cosa_edge.export", "cosa_edge.train", "cosa_edge.model", "cosa_edge.backends")
#: Calls that import a module named by a string: a lazy import by another route.
IMPORTING_CALLS = {"import_module", "__import__", "require"}


def module_name(path: Path, root: Path = PACKAGE_ROOT) -> str:
    """cosa_edge/engines/build.py -> cosa_edge.engines.build; a package's __init__.py -> the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The absolute names an import statement (or import_module("...") call) can load, relative ones resolved."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level == 0:
            base = node.module or ""
        else:
            # level 1 is the module's own package (a package's __init__ is its own package), each further dot goes
            # up one
            package = module.split(".") if is_package else module.split(".")[:-1]
            anchor = package[:max(0, len(package) - (node.level - 1))]
            base = ".".join(anchor + ([node.module] if node.module else []))
        # `from pkg import name` may load the submodule pkg.name: both are candidates
        return [base] + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
            and isinstance(node.args[0].value, str):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in IMPORTING_CALLS:
            return [node.args[0].value]
    return []


def forbidden_imports(source: str, filename: str, module: str, is_package: bool) -> list[str]:
    """'file:line: statement (-> module)' for every import in ``source`` that reaches a FORBIDDEN package."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):  # walks function bodies too: lazy imports count
        for name in imported_modules(node, module, is_package):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN):
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node)} (-> {name})")
                break
    return found


def runtime_side_files() -> list[Path]:
    files = []
    for entry in RUNTIME_SIDE:
        path = PACKAGE_ROOT / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def test_the_runtime_side_never_imports_the_training_side() -> None:
    files = runtime_side_files()
    assert len(files) > 10 and all(f.is_file() for f in files)
    violations = []
    for path in files:
        violations += forbidden_imports(path.read_text(), str(path.relative_to(PACKAGE_ROOT.parent)), module_name(path),
                                        path.name == "__init__.py")
    assert not violations, "the runtime side imports the training side:\n" + "\n".join(violations)


def test_the_import_check_resolves_relative_and_lazy_imports() -> None:
    """The static check above is only as good as its resolver: feed it every way an import can be written."""
    source = ("from ..export.onnx_export import DeployModule\n"
              "from .. import model\n"
              "from . import base\n"
              "import numpy\n"
              "def lazy():\n"
              "    import cosa_edge.train.loop\n"
              "    from cosa_edge import export\n"
              "    importlib.import_module('cosa_edge.export.parity')\n"
              "    require('onnx')\n")
    found = forbidden_imports(source, "cosa_edge/engines/x.py", "cosa_edge.engines.x", is_package=False)
    assert [line.split(":")[1] for line in found] == ["1", "2", "6", "7", "8"], found
    assert found[0] == ("cosa_edge/engines/x.py:1: from ..export.onnx_export import DeployModule "
                        "(-> cosa_edge.export.onnx_export)")
    # In a package's __init__.py, one dot is the package itself.
    assert forbidden_imports("from .model import X\n", "cosa_edge/engines/__init__.py", "cosa_edge.engines", True) == []
    assert forbidden_imports("from ..model import X\n", "cosa_edge/engines/__init__.py", "cosa_edge.engines", True)


def test_deploy_side_imports_without_torch() -> None:
    code = (
        "import sys\n"
        f"for name in {DEPLOY_MODULES!r}: __import__(name)\n"
        "heavy = [m for m in ('torch', 'torchvision', 'onnxruntime', 'tensorrt') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_an_onnx_engine_opens_without_opencv_or_torch(exported_onnx: Path) -> None:
    """A Triton server's Python environment (cosa-edge serve) has numpy, onnx and ONNX Runtime, not OpenCV or torch;
    the import of cv2 and torch is made to fail here as it would there."""
    code = ("import builtins, sys\nreal = builtins.__import__\n"
            "def guarded(name, *args, **kwargs):\n"
            "    if name.split('.')[0] in ('cv2', 'torch'):\n        raise ModuleNotFoundError(name)\n"
            "    return real(name, *args, **kwargs)\n"
            "builtins.__import__ = guarded\nfrom cosa_edge.backends import open_engine\n"
            f"engine = open_engine({str(exported_onnx)!r})\nprint(engine.metadata.architecture)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "mtl_cosa", result.stderr[-1500:]


def test_cli_help_runs_without_loading_torch() -> None:
    code = ("import sys\nfrom click.testing import CliRunner\nfrom cosa_edge.cli import cli\n"
            "r = CliRunner().invoke(cli, ['--help'])\nassert r.exit_code == 0, r.output\n"
            "assert 'train' in r.output and 'cv' in r.output\nprint('torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_missing_optional_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from cosa_edge import _optional
    from cosa_edge.errors import CosaEdgeError

    monkeypatch.setitem(_optional._EXTRAS, "cosa_edge_absent_runtime", ("tensorrt", "TensorRT engines"))
    with pytest.raises(CosaEdgeError, match=r"pip install 'cosa-edge\[tensorrt\]'"):
        _optional.require("cosa_edge_absent_runtime")


def test_export_without_onnx_names_the_export_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`cosa-edge export` on a machine with torch but no onnx: one line naming the extra, before any work."""
    pytest.importorskip("torch")
    from click.testing import CliRunner

    from cosa_edge.cli import cli
    from cosa_edge.errors import CosaEdgeError
    from cosa_edge.export.onnx_export import export_onnx

    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError, as if not installed
    with pytest.raises(CosaEdgeError, match=r"onnx is needed for ONNX export .*pip install 'cosa-edge\[export\]'"):
        export_onnx(tmp_path / "never-read.pt", tmp_path / "m.onnx")
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "never-read.pt"), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1 and "pip install 'cosa-edge[export]'" in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()
