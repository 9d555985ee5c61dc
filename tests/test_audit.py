"""The audit trail: the intended use wherever the project speaks, hashes checked on load, the JSONL header."""

from __future__ import annotations

import json
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from cosa_edge.bench.report import write_report
from cosa_edge.bench.runner import BenchResult
from cosa_edge.bench.stats import summarise_latencies
from cosa_edge.cli import cli
from cosa_edge.contract import INTENDED_USE, ModelMetadata
from cosa_edge.engines.artifact import (GRAPH_HASH_KEY, UnverifiedArtifactWarning, scan_onnx, verify_onnx_bytes,
                                        write_model_with_metadata)
from cosa_edge.engines.build import build_engine, standard_ops_copy
from cosa_edge.engines.fp16 import convert_to_fp16
from cosa_edge.engines.onnxruntime_engine import OnnxRuntimeEngine
from cosa_edge.engines.tensorrt_engine import check_plan
from cosa_edge.errors import CosaEdgeError
from cosa_edge.report.tables import aggregate, write_tables
from cosa_edge.stream.run import audit_header, infer_source, source_name

# --- the intended use ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["infer"], ["export"], ["build-engine"]])
def test_help_states_the_intended_use(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert INTENDED_USE in " ".join(result.output.split())  # click may wrap the line


def test_bench_report_states_the_intended_use(tmp_path: Path) -> None:
    latency = summarise_latencies([1.0, 2.0, 3.0])
    results = [BenchResult("m.onnx", "onnxruntime", "fp32", 1, latency, 500.0)]
    system = {"cpu": "test", "cpu_cores": 2, "gpus": [], "python": "3", "libraries": {}}
    write_report(results, tmp_path, system)
    assert (tmp_path / "report.md").read_text().splitlines()[2] == f"*{INTENDED_USE}*"  # under the title
    assert json.loads((tmp_path / "report.json").read_text())["intended_use"] == INTENDED_USE


def test_tables_state_the_intended_use(tmp_path: Path) -> None:
    fold = {"segmentation": {"TPR": 0.8, "FPR": 0.3, "mIoU": 0.8, "DSC": 0.7, "AER": 0.5}}
    write_tables({"mtl_cosa": {"folds": [fold], "aggregate": aggregate([fold])}}, "phantom:8", tmp_path,
                 preamble="Evaluation of a test run.")
    markdown = (tmp_path / "tables.md").read_text()
    assert markdown.startswith(f"*{INTENDED_USE}*") and "Evaluation of a test run." in markdown
    assert json.loads((tmp_path / "results.json").read_text())["intended_use"] == INTENDED_USE


# --- ONNX models: the graph hash ------------------------------------------------------------------------------


def _flip_a_weight_byte(path: Path, destination: Path) -> None:
    """Change one byte inside the largest initializer of the file, metadata untouched."""
    data = bytearray(path.read_bytes())
    largest = max(onnx.load(str(path)).graph.initializer, key=lambda t: len(t.raw_data))
    offset = bytes(data).find(largest.raw_data[:64])
    assert offset > 0 and bytes(data).count(largest.raw_data[:64]) == 1
    data[offset + 10] ^= 0x01
    destination.write_bytes(bytes(data))


def test_an_export_carries_its_graph_hash_and_loads_verified(exported_onnx: Path) -> None:
    digest, props = scan_onnx(exported_onnx.read_bytes())
    assert json.loads(props[GRAPH_HASH_KEY]) == digest
    with OnnxRuntimeEngine(exported_onnx) as engine:
        assert engine.metadata.graph_sha256 == digest
        assert engine.integrity.sha256 == digest and engine.integrity.verified


def test_a_changed_weight_byte_is_refused(exported_onnx: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.onnx"
    _flip_a_weight_byte(exported_onnx, tampered)
    with pytest.raises(CosaEdgeError, match=r"has been changed since it was exported or built \(hash [0-9a-f]+\.\.\. "
                                            r"!= [0-9a-f]+\.\.\. recorded\); export it again"):
        OnnxRuntimeEngine(tampered)
    # Nor can it be laundered into a fresh hash by building from it or converting it.
    with pytest.raises(CosaEdgeError, match="has been changed"):
        build_engine(tampered, tmp_path / "engine.onnx", target="onnxruntime", precision="fp32")
    with pytest.raises(CosaEdgeError, match="has been changed"):
        convert_to_fp16(tampered, tmp_path / "fp16.onnx")
    assert not (tmp_path / "engine.onnx").exists() and not (tmp_path / "fp16.onnx").exists()


def test_a_changed_initializer_saved_by_onnx_is_refused(exported_onnx: Path, tmp_path: Path) -> None:
    model = onnx.load(str(exported_onnx))
    weights = onnx.numpy_helper.to_array(model.graph.initializer[0]).copy()
    weights.flat[0] += 1.0
    model.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(weights, model.graph.initializer[0].name))
    onnx.save(model, str(tmp_path / "edited.onnx"))  # the metadata, hash included, kept as it was
    with pytest.raises(CosaEdgeError, match="has been changed since it was exported or built"):
        OnnxRuntimeEngine(tmp_path / "edited.onnx")


def test_a_model_resaved_unchanged_still_verifies(exported_onnx: Path, tmp_path: Path) -> None:
    onnx.save(onnx.load(str(exported_onnx)), str(tmp_path / "resaved.onnx"))
    with OnnxRuntimeEngine(tmp_path / "resaved.onnx") as engine:
        assert engine.integrity.verified


def test_a_model_without_a_hash_loads_with_a_warning(exported_onnx: Path, tmp_path: Path) -> None:
    """Models exported before hashes existed: unverified, said so, and still usable."""
    model = onnx.load(str(exported_onnx))
    kept = [p for p in model.metadata_props if p.key != GRAPH_HASH_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(tmp_path / "old.onnx"))
    with pytest.warns(UnverifiedArtifactWarning, match="records no hash.*loaded unverified"):
        engine = OnnxRuntimeEngine(tmp_path / "old.onnx")
    with engine:
        assert not engine.integrity.verified and engine.integrity.sha256 == scan_onnx(exported_onnx.read_bytes())[0]


def test_every_writer_hashes_what_it_writes(exported_onnx: Path, trained_checkpoint: Path, tmp_path: Path) -> None:
    """FP16 conversion, the ONNX Runtime build and the plugin node's rewrite write new graphs, each with its own
    hash."""
    from cosa_edge.export.onnx_export import export_onnx

    export_hash = scan_onnx(exported_onnx.read_bytes())[0]
    convert_to_fp16(exported_onnx, tmp_path / "fp16.onnx")
    build_engine(exported_onnx, tmp_path / "ort.onnx", target="onnxruntime", precision="fp32")
    export_onnx(trained_checkpoint, tmp_path / "plugin.onnx", cosa_op="plugin")
    standard_ops_copy(tmp_path / "plugin.onnx", tmp_path / "standard.onnx")
    hashes = {export_hash}
    for name in ("fp16.onnx", "ort.onnx", "plugin.onnx", "standard.onnx"):
        data = (tmp_path / name).read_bytes()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # none of them may be unverified
            assert verify_onnx_bytes(data, tmp_path / name).verified, name
        hashes.add(scan_onnx(data)[0])
    assert len(hashes) == 5  # every graph differs from the others, and so does its hash


def test_the_writer_appends_the_metadata_and_leaves_the_model_as_it_was(tmp_path: Path) -> None:
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    # A model function is field 25: onnx.save writes it after the metadata (14), the writer before.
    function = onnx.helper.make_function("local", "Twice", ["a"], ["b"],
                                         [onnx.helper.make_node("Add", ["a", "a"], ["b"])],
                                         [onnx.helper.make_opsetid("", 17)])
    model = onnx.helper.make_model(graph, functions=[function])
    model.metadata_props.add(key="other", value="kept in memory")
    written = write_model_with_metadata(model, ModelMetadata("a", "b", 32), tmp_path / "m.onnx")
    assert [p.key for p in model.metadata_props] == ["other"]
    loaded = onnx.load(str(tmp_path / "m.onnx"))  # onnx reads the appended metadata records
    assert ModelMetadata.from_props({p.key: p.value for p in loaded.metadata_props}, "m") == written
    assert written.graph_sha256 == scan_onnx((tmp_path / "m.onnx").read_bytes())[0]
    onnx.save(loaded, str(tmp_path / "resaved.onnx"))
    resaved = (tmp_path / "resaved.onnx").read_bytes()
    assert resaved != (tmp_path / "m.onnx").read_bytes() and verify_onnx_bytes(resaved, Path("resaved.onnx")).verified


def test_not_protobuf_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        scan_onnx(b"\x08\x07garbage")
    (tmp_path / "bad.onnx").write_bytes(b"\x0a\xff\xff\xff\x0f")  # a length beyond the end of the file
    with pytest.raises(CosaEdgeError, match="ONNX Runtime cannot load"):
        OnnxRuntimeEngine(tmp_path / "bad.onnx")


# --- TensorRT plans: the sidecar's hash -----------------------------------------------------------------------


def test_tensorrt_plan_hash_is_checked_against_its_sidecar() -> None:
    import hashlib

    plan = bytes(range(256)) * 64
    sidecar = {"metadata": {}, "build": {"plan_sha256": hashlib.sha256(plan).hexdigest()}}
    assert check_plan(plan, sidecar, Path("m.engine")).verified
    changed = bytearray(plan)
    changed[1000] ^= 0x01
    with pytest.raises(CosaEdgeError, match=r"m.engine has been changed since it was built \(hash .* recorded\); "
                                            r"build it again with `cosa-edge build-engine`"):
        check_plan(bytes(changed), sidecar, Path("m.engine"))
    with pytest.warns(UnverifiedArtifactWarning, match="m.engine records no hash"):
        integrity = check_plan(plan, {"build": {}}, Path("m.engine"))
    assert not integrity.verified and integrity.sha256 == hashlib.sha256(plan).hexdigest()


def test_tensorrt_engine_checks_the_plan_before_deserialising_it() -> None:
    """The engine reads the plan once, checks it, and gives the runtime those bytes (no TensorRT needed to see it)."""
    import ast

    source = (Path(__file__).resolve().parents[1] / "cosa_edge/engines/tensorrt_engine.py").read_text()
    init = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    calls = [ast.unparse(n) for n in ast.walk(init) if isinstance(n, ast.Call)]
    assert "check_plan(plan, sidecar, path)" in calls and "self.runtime.deserialize_cuda_engine(plan)" in calls
    lines = {c: n.lineno for n in ast.walk(init) if isinstance(n, ast.Call) for c in [ast.unparse(n)]}
    assert lines["check_plan(plan, sidecar, path)"] < lines["self.runtime.deserialize_cuda_engine(plan)"]


# --- PyTorch checkpoints: the weights hash --------------------------------------------------------------------


def test_checkpoint_weights_are_checked_on_load(trained_checkpoint: Path, tmp_path: Path) -> None:
    import torch

    from cosa_edge.backends import open_engine
    from cosa_edge.export.onnx_export import export_onnx
    from cosa_edge.train.checkpoint import load_checkpoint

    payload = load_checkpoint(trained_checkpoint).to_payload()  # the file's own dict, to change one weight in
    with open_engine(trained_checkpoint) as engine:
        assert engine.integrity.verified and engine.integrity.sha256 == payload["weights_sha256"]
    name = next(k for k, v in payload["model"].items() if v.is_floating_point())
    payload["model"][name] = payload["model"][name].clone()
    payload["model"][name].view(-1)[0] += 1.0  # one weight changed, the recorded hash kept
    torch.save(payload, tmp_path / "changed.pt")
    with pytest.raises(CosaEdgeError, match="changed.pt has been changed since it was saved"):
        open_engine(tmp_path / "changed.pt")
    with pytest.raises(CosaEdgeError, match="has been changed since it was saved"):
        export_onnx(tmp_path / "changed.pt", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


# --- the JSONL header -----------------------------------------------------------------------------------------


def test_jsonl_starts_with_an_audit_header(exported_onnx: Path, tmp_path: Path) -> None:
    from cosa_edge.data.phantom import write_sweep_video

    # A folder named like a patient: it must not reach the results.
    video = write_sweep_video(tmp_path / "Doe_Jane_1970-01-01" / "sweep.mp4", seed=3, frames=6, size=(96, 128))
    with OnnxRuntimeEngine(exported_onnx) as engine:
        infer_source(str(video), engine, None, tmp_path / "r.jsonl", progress=False, smoothing=0.5)
        expected_hash = engine.integrity.sha256
    text = (tmp_path / "r.jsonl").read_text()
    header, *records = [json.loads(line) for line in text.splitlines()]
    assert header["type"] == "header" and len(records) == 6 and "type" not in records[0]
    assert header["engine"] == "model.onnx" and header["engine_sha256"] == expected_hash
    assert header["engine_hash_verified"] is True and header["backend"] == "onnxruntime"
    assert header["intended_use"] == INTENDED_USE and header["cosa_edge_version"]
    assert header["model"] == {"architecture": "mtl_cosa", "encoder": "resnet18", "input_size": 64, "precision": "fp32"}
    assert header["thresholds"]["lesion_probability"] == 0.5 and header["thresholds"]["min_lesion_share"] > 0
    # The fixture's run had no validation split: its checkpoint records temperature 1 (no scaling), carried through.
    assert header["calibration_temperature"] == 1.0
    assert header["thresholds"]["min_lesion_share_from"] == "model"
    assert header["source"] == "sweep.mp4" and header["source_kind"] == "video"
    assert header["settings"] == {"roi": None, "region": None, "batch_size": 1, "realtime": False, "smoothing": 0.5,
                                  "pixel_spacing_mm": None, "keep_outside_roi": False}
    assert datetime.fromisoformat(header["started"]).tzinfo is not None
    assert all(r["engine_sha256"] == expected_hash for r in records)
    assert "Doe_Jane" not in text and str(tmp_path) not in text and str(exported_onnx.parent) not in text


def test_cli_infer_writes_the_header(exported_onnx: Path, tmp_path: Path) -> None:
    from cosa_edge.data.phantom import write_sweep_video

    video = write_sweep_video(tmp_path / "v.mp4", seed=2, frames=3, size=(96, 128))
    result = CliRunner().invoke(cli, ["infer", "--video", str(video), "--engine", str(exported_onnx),
                                      "--results", str(tmp_path / "r.jsonl")])
    assert result.exit_code == 0, result.output
    header = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert header["type"] == "header" and header["engine"] == exported_onnx.name and header["source"] == "v.mp4"


def test_source_names_hold_no_paths_addresses_or_credentials() -> None:
    assert source_name("/data/patients/Doe_Jane/scan.mp4", "video") == "scan.mp4"
    assert source_name("0", "camera") == "camera 0"
    assert source_name("rtsp://admin:secret@10.1.2.3:554/ward7", "stream") == "rtsp stream"


def test_header_of_an_engine_without_integrity() -> None:
    """A stand-in engine (tests, third-party backends) has no hash: the header says so instead of failing."""
    from cosa_edge.engines.base import Engine, TensorSpec

    class Bare(Engine):
        backend = "bare"
        inputs = outputs = property(lambda self: [TensorSpec("image", ("batch", 1, 8, 8), "float32")])

        def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
            return {}

    metadata = ModelMetadata("mtl_cosa", "resnet18", 8, presence={"min_lesion_share": 0.01},
                             calibration={"temperature": 1.5})
    header = audit_header(Bare(Path("/somewhere/x.onnx"), metadata), "clip.avi", "video", {})
    assert header["engine"] == "x.onnx" and header["engine_sha256"] is None and not header["engine_hash_verified"]
    assert header["thresholds"]["min_lesion_share"] == 0.01 and header["thresholds"]["min_lesion_share_from"] == "model"
    assert header["calibration_temperature"] == 1.5


def test_cli_infer_on_a_dicom_cine_with_a_real_engine(exported_onnx: Path, tmp_path: Path) -> None:
    """The whole command on a DICOM cine (the exported ONNX model, not a stand-in): every frame, its region and its
    calibration; a bad --pixel-spacing is one line, not a traceback."""
    pytest.importorskip("pydicom")
    from cosa_edge.data.dicom_phantom import write_sweep_dicom

    cine = write_sweep_dicom(tmp_path / "cine.dcm", seed=2, frames=4, size=(96, 128), fps=25.0, spacing_mm=0.2)
    result = CliRunner().invoke(cli, ["infer", "--video", str(cine), "--engine", str(exported_onnx), "--results",
                                      str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "o.avi")])
    assert result.exit_code == 0, result.output
    header, *records = (json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines())
    assert header["source"] == "cine.dcm" and header["source_kind"] == "dicom" and len(records) == 4
    assert [r["timestamp"] for r in records] == pytest.approx([0.0, 0.04, 0.08, 0.12])
    assert all(r["roi"] == [0, 0, 128, 96] and r["pixel_spacing_mm"] == [0.2, 0.2] for r in records)
    bad = CliRunner().invoke(cli, ["infer", "--video", str(cine), "--engine", str(exported_onnx), "--results",
                                   str(tmp_path / "bad.jsonl"), "--pixel-spacing", "wide"])
    assert bad.exit_code != 0 and "--pixel-spacing 'wide' must be MM or DY,DX" in bad.output
    assert "Traceback" not in bad.output and not (tmp_path / "bad.jsonl").exists()
