"""The deploy side imports without torch: an edge box has an inference runtime, not a training stack."""

import subprocess
import sys

DEPLOY_MODULES = ["cosa_edge", "cosa_edge.cli", "cosa_edge.data", "cosa_edge.data.phantom", "cosa_edge.data.splits",
                  "cosa_edge.metrics", "cosa_edge.kernels.reference", "cosa_edge.config", "cosa_edge.report.tables",
                  "cosa_edge.report.roc", "cosa_edge.engines", "cosa_edge.engines.build", "cosa_edge.stream.run",
                  "cosa_edge.stream.pipeline", "cosa_edge.bench.runner", "cosa_edge.bench.report", "cosa_edge.kernels.cuda",
                  "cosa_edge.engines.onnxruntime_engine", "cosa_edge.engines.tensorrt_engine", "cosa_edge.export.fp16",
                  "cosa_edge.export.parity"]


def test_deploy_side_imports_without_torch() -> None:
    code = (
        "import sys\n"
        f"for name in {DEPLOY_MODULES!r}: __import__(name)\n"
        "heavy = [m for m in ('torch', 'torchvision', 'onnxruntime', 'tensorrt') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_cli_help_runs_without_loading_torch() -> None:
    code = ("import sys\nfrom click.testing import CliRunner\nfrom cosa_edge.cli import cli\n"
            "r = CliRunner().invoke(cli, ['--help'])\nassert r.exit_code == 0, r.output\n"
            "assert 'train' in r.output and 'cv' in r.output\nprint('torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_missing_optional_library_names_the_extra(monkeypatch) -> None:
    import pytest

    from cosa_edge import _optional
    from cosa_edge.errors import CosaEdgeError

    monkeypatch.setitem(_optional._EXTRAS, "cosa_edge_absent_runtime", ("tensorrt", "TensorRT engines"))
    with pytest.raises(CosaEdgeError, match=r"pip install 'cosa-edge\[tensorrt\]'"):
        _optional.require("cosa_edge_absent_runtime")
