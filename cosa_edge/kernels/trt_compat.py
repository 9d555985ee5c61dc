"""Which TensorRT versions each path supports, as plain version arithmetic (imports no TensorRT).

* The standard export (ONNX ops only) builds on TensorRT 10 and 11.
* The COSA plugin needs ``tensorrt.plugin`` (TensorRT 10.6+); its ahead-of-time form, which puts
  the kernel's PTX in the engine, needs ``tensorrt.plugin.aot_impl`` (10.9+). JetPack 6 on Jetson
  ships TensorRT 10.3, which has neither.
* TensorRT before 11.2 converts one-element plugin-field arrays with ``int(array)``, which numpy
  2.4 refuses ("only 0-dimensional arrays can be converted"): plugin creation fails there with
  numpy >= 2.4 (seen with 10.16.1.11 and 11.0/11.1; fixed in 11.2's tensorrt.plugin).
"""

from __future__ import annotations

import re

PLUGIN_API = (10, 6)
AOT_API = (10, 9)
PLUGIN_NUMPY_24_FIXED = (11, 2)
NUMPY_INT_OF_ARRAY_REMOVED = (2, 4)


def parse_version(text: str) -> tuple[int, ...]:
    """'10.16.1.11' -> (10, 16, 1, 11); stops at the first part that is not a number ('2.4.0rc1' -> (2, 4, 0))."""
    parts = []
    for part in text.split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        parts.append(int(match.group()))
        if match.group() != part:
            break
    return tuple(parts)


def has_plugin_api(trt_version: str) -> bool:
    return parse_version(trt_version)[:2] >= PLUGIN_API


def has_aot(trt_version: str) -> bool:
    return parse_version(trt_version)[:2] >= AOT_API


def plugin_problem(trt_version: str, numpy_version: str, has_plugin_module: bool) -> str | None:
    """Why the COSA plugin cannot be built with this TensorRT and numpy, in one sentence; None if it can."""
    if not has_plugin_module or not has_plugin_api(trt_version):
        return (f"TensorRT {trt_version} has no tensorrt.plugin module (TensorRT {PLUGIN_API[0]}.{PLUGIN_API[1]} "
                "or newer has it), so it cannot build the COSA plugin")
    if (parse_version(trt_version)[:2] < PLUGIN_NUMPY_24_FIXED
            and parse_version(numpy_version)[:2] >= NUMPY_INT_OF_ARRAY_REMOVED):
        return (f"TensorRT {trt_version}'s tensorrt.plugin fails with numpy {numpy_version} (it calls int() on "
                "arrays, which numpy 2.4 removed): install numpy<2.4 (pip install 'cosa-edge[tensorrt10]') or "
                "TensorRT 11.2 or newer")
    return None
