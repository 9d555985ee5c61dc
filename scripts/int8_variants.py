"""Which INT8 layout to use: variants of ONNX Runtime's static QDQ quantization of one FP32 export, timed side by
side with the FP32 model (batch 1, interleaved rounds), and, given labelled held-out images, their accuracy.

This is how the choices in cosa_edge/engines/int8.py were measured (docs/deployment.md, "INT8 engines"):

    python scripts/int8_variants.py runs/edge256.onnx                       # speed (phantom calibration)
    python scripts/int8_variants.py runs/busi128.onnx --busi ../shared/data/busi \\
        --folds runs/busi-cv/folds.json --fold 0 --accuracy                  # accuracy on fold 0's test images

On a CPU without VNNI (or an emulated one: qemu-x86_64 -cpu EPYC-Milan .venv/bin/python scripts/...), compare
how ONNX Runtime runs each graph (--sessions): ``default`` (its default session), ``exact`` (exact U8U8 products,
session.x64quantprecision: what cosa-edge runs ONNX Runtime's graphs with) and ``float-qdq`` (Q/DQ in float,
session.disable_quant_qdq: what cosa-edge checks TensorRT's graph with). Without --busi the accuracy is taken
on held-out phantoms (another seed than the calibration's); --no-timing where the CPU is emulated.

Research use only, not for clinical diagnosis.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

from cosa_edge.contract import ModelMetadata, stack_frames
from cosa_edge.data import Sample, load_dataset, resize_grey
from cosa_edge.data.splits import fold_part
from cosa_edge.backends import open_engine
from cosa_edge.evaluation.comparison import compare_to_reference
from cosa_edge.engines.artifact import write_model_with_metadata
from cosa_edge.engines.int8 import FP32_SCOPES, fp32_kept_nodes
from cosa_edge.engines.int8_arithmetic import EXACT_X86_PRODUCTS, QDQ_IN_FLOAT
from cosa_edge.engines.onnxruntime_engine import OnnxRuntimeEngine
from cosa_edge.hardware import cpu_class

OPS = {"conv": ["Conv"], "conv+add": ["Conv", "Add", "Relu"],
       "all": ["Conv", "Add", "Relu", "Concat", "Resize", "MaxPool"]}
TYPES = {"u8s8": (QuantType.QUInt8, QuantType.QInt8, False, False),
         "u8s8-reduce-range": (QuantType.QUInt8, QuantType.QInt8, True, False),
         "s8s8-symmetric": (QuantType.QInt8, QuantType.QInt8, False, True),
         "u8u8": (QuantType.QUInt8, QuantType.QUInt8, False, False)}


class Reader:
    def __init__(self, frames: np.ndarray) -> None:
        self.frames = iter(frames)

    def get_next(self) -> dict | None:
        frame = next(self.frames, None)
        return None if frame is None else {"image": frame[None]}


SESSIONS = {"default": {}, "exact": dict([EXACT_X86_PRODUCTS]), "float-qdq": dict([QDQ_IN_FLOAT])}


def session(path: str, entries: dict[str, str]) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    for key, value in entries.items():
        options.add_session_config_entry(key, value)
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="an FP32 export (cosa-edge export)")
    parser.add_argument("--busi", help="BUSI folder: calibrate on a fold's training images, check on its test images")
    parser.add_argument("--folds", help="a cosa-edge cv folds.json")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--calib-count", type=int, default=400)
    parser.add_argument("--accuracy", action="store_true", help="also score each variant on the held-out images")
    parser.add_argument("--methods", default="minmax", help="comma-separated: minmax, percentile")
    parser.add_argument("--ops", default=",".join(OPS), help=f"comma-separated: {', '.join(OPS)}")
    parser.add_argument("--types", default=",".join(TYPES), help=f"comma-separated: {', '.join(TYPES)}")
    parser.add_argument("--sessions", default="default", help=f"comma-separated: {', '.join(SESSIONS)}")
    parser.add_argument("--phantoms", type=int, default=48, help="held-out phantoms for --accuracy without --busi")
    parser.add_argument("--no-timing", action="store_true", help="accuracy only (an emulated CPU's times mean nothing)")
    return parser.parse_args()


def _train_and_test(args: argparse.Namespace, size: int) -> tuple[list[Sample], list[Sample]]:
    """The calibration's source images and the held-out images (none without --accuracy on phantoms)."""
    if args.busi:
        samples = load_dataset(f"busi:{args.busi}", progress=False, include_normal=True)
        train, test = (fold_part(samples, Path(args.folds), args.fold, part) for part in ("train", "test"))
    else:
        train = load_dataset("phantom:64", progress=False, phantom_size=size)
        test = load_dataset(f"phantom:{args.phantoms}", progress=False, phantom_size=size, seed=23,
                            include_normal=True) if args.accuracy else []
    return train, test


def _quantized_variants(args: argparse.Namespace, frames: np.ndarray, metadata: ModelMetadata,
                        tmp: str) -> dict[str, str]:
    """Each variant's INT8 model, written under ``tmp``, by name; the FP32 model first, as "fp32"."""
    import onnx

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    source = onnx.load(args.model)
    kept = set(fp32_kept_nodes(source))
    paths = {"fp32": args.model}
    for (ops, kind, method) in itertools.product(args.ops.split(","), args.types.split(","),
                                                 args.methods.split(",")):
        activation, weight, reduce_range, symmetric = TYPES[kind]
        nodes = [n.name for n in source.graph.node if n.op_type in OPS[ops] and n.name not in kept]
        out = str(Path(tmp) / f"{ops}-{kind}-{method}.onnx")
        quantize_static(args.model, out, Reader(frames), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce_range, activation_type=activation, weight_type=weight,
                        op_types_to_quantize=OPS[ops], nodes_to_quantize=nodes, calibrate_method=methods[method],
                        extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True})
        # The quantizer copies the FP32 model's metadata, graph hash included: give the new graph its own.
        quantized = onnx.load(out)
        del quantized.metadata_props[:]
        write_model_with_metadata(quantized, metadata.with_changes(precision="int8"), Path(out))
        paths[f"{ops} {kind} {method}"] = out
    return paths


def _timings(paths: dict[str, str], frames: np.ndarray, entries: dict[str, str]) -> dict[str, list[float]]:
    """Seconds per batch-1 run of each model: five interleaved rounds of 20 runs each, after a warm-up."""
    times: dict[str, list[float]] = {name: [] for name in paths}
    sessions = {name: session(path, entries) for name, path in paths.items()}
    x = frames[:1]
    for s in sessions.values():
        for _ in range(5):
            s.run(None, {"image": x})
    for _round in range(5):
        for name, s in sessions.items():
            time.sleep(0.05)
            for _ in range(20):
                started = time.perf_counter()
                s.run(None, {"image": x})
                times[name].append(time.perf_counter() - started)
    return times


def _accuracy(model: str, variant: str, mode: str, test: list[Sample]) -> str:
    """How the variant, run with the session entries of ``mode``, agrees with the FP32 model on ``test``."""
    with open_engine(model) as reference, \
            OnnxRuntimeEngine(Path(variant), session_entries=SESSIONS[mode]) as candidate:
        f = compare_to_reference(reference, candidate, test)
    return (f"  flips {f.class_flips}  presence {f.presence_flips}  mask Dice agreement "
            f"{f.mask_dice_agreement:.4f}  Dice {f.reference.dice:.4f}->{f.candidate.dice:.4f}  "
            f"ACC {f.reference.acc:.4f}->{f.candidate.acc:.4f}")


def main() -> None:
    args = _arguments()
    sessions_asked = args.sessions.split(",")
    metadata = open_engine(args.model).metadata
    size = metadata.input_size
    train, test = _train_and_test(args, size)
    order = np.random.default_rng(0).permutation(len(train))[:args.calib_count]
    frames = stack_frames([resize_grey(train[i].image, size) for i in sorted(order)])
    with tempfile.TemporaryDirectory() as tmp:
        paths = _quantized_variants(args, frames, metadata, tmp)
        print(f"CPU class {cpu_class()}; FP32 scopes kept: {', '.join(FP32_SCOPES)}; calibration: {len(frames)} images")
        if args.no_timing:
            times: dict[str, list[float]] = {name: [] for name in paths}
        else:
            times = _timings(paths, frames, SESSIONS[sessions_asked[0]])
        base = float(np.median(times["fp32"])) if times["fp32"] else float("nan")
        for name in paths:
            for mode in sessions_asked if name != "fp32" else sessions_asked[:1]:
                line = f"{name:40s} {mode:9s}"
                if times[name]:
                    line += f" {np.median(times[name]) * 1e3:6.2f} ms  {np.median(times[name]) / base:.2f}x FP32"
                if args.accuracy and test and name != "fp32":
                    line += _accuracy(args.model, paths[name], mode, test)
                print(line, flush=True)

if __name__ == "__main__":
    main()
