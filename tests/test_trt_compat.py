"""Which TensorRT versions each path supports, and extras that pip cannot resolve to a broken pair (defect 4)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from cosa_edge.kernels import trt_compat

REPO = Path(__file__).resolve().parents[1]
# TensorRT releases on PyPI (tensorrt-cu12-bindings' versions) and numpy minor releases around 2.4.
TENSORRT_RELEASES = ["10.0.1", "10.3.0", "10.5.0", "10.6.0", "10.8.0.43", "10.9.0.34", "10.13.3.9", "10.16.1.11",
                     "11.0.0.114", "11.1.0.106", "11.2.1.2", "11.3.0.99", "11.4.0.106"]
NUMPY_RELEASES = ["1.26.4", "2.2.6", "2.3.5", "2.4.0", "2.4.6", "2.5.1"]


def test_versions() -> None:
    assert trt_compat.parse_version("10.16.1.11") == (10, 16, 1, 11)
    assert trt_compat.parse_version("2.4.0rc1") == (2, 4, 0)
    assert not trt_compat.has_plugin_api("10.3.0") and trt_compat.has_plugin_api("10.6.0")
    assert not trt_compat.has_aot("10.8.0.43") and trt_compat.has_aot("10.9.0.34") and trt_compat.has_aot("11.4.0")


@pytest.mark.parametrize(("trt", "numpy", "problem"), [
    ("10.3.0", "1.26.4", "no tensorrt.plugin"),  # JetPack 6
    ("10.16.1.11", "2.4.6", "numpy<2.4"),
    ("11.1.0.106", "2.4.0", "numpy<2.4"),
    ("10.16.1.11", "2.3.5", None),
    ("11.2.1.2", "2.4.6", None),
    ("11.4.0.106", "2.5.1", None),
])
def test_plugin_problem(trt: str, numpy: str, problem: str | None) -> None:
    found = trt_compat.plugin_problem(trt, numpy, has_plugin_module=True)
    assert (found is None) if problem is None else (problem in found)


def test_a_missing_plugin_module_is_named_whatever_the_version() -> None:
    assert "no tensorrt.plugin" in trt_compat.plugin_problem("11.4.0", "2.4.6", has_plugin_module=False)


def _extras() -> dict[str, list[Requirement]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {name: [Requirement(r) for r in reqs] for name, reqs in project["optional-dependencies"].items()}


@pytest.mark.parametrize("extra", ["tensorrt", "tensorrt10"])
def test_no_extra_admits_a_broken_tensorrt_numpy_pair(extra: str) -> None:
    requirements = {r.name: r.specifier for r in _extras()[extra]}
    numpy_floor = next(r for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
                       if r.startswith("numpy"))
    numpy_spec = Requirement(numpy_floor).specifier & requirements.get("numpy", Requirement("numpy").specifier)
    tensorrt = [v for v in TENSORRT_RELEASES if requirements["tensorrt"].contains(v)]
    assert tensorrt, f"the {extra} extra admits no TensorRT release"
    broken = [(t, n) for t in tensorrt for n in NUMPY_RELEASES if numpy_spec.contains(n)
              and trt_compat.plugin_problem(t, n, has_plugin_module=trt_compat.has_plugin_api(t))]
    assert not broken, f"pip could install these broken pairs with [{extra}]: {broken}"


def test_the_trt_api_extra_pins_the_wheels_the_tests_use() -> None:
    pins = {r.name: str(r.specifier) for r in _extras()["trt-api"]}
    assert set(pins) == {"tensorrt-lean-cu13-bindings", "tensorrt-lean-cu13-libs"}
    assert len(set(pins.values())) == 1 and next(iter(pins.values())).startswith("==")
