"""The model card: beside the model and in its metadata; intended use, out-of-scope uses, provenance, CV figures."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner

from cosa_edge.contract import INTENDED_USE, ModelMetadata
from cosa_edge.errors import CosaEdgeError
from cosa_edge.export.model_card import (BUSI_LIMITATIONS, LESION_FREE_OUT_OF_SCOPE, OUT_OF_SCOPE, build_model_card,
                                         card_path, read_cv_results)

REPO = Path(__file__).resolve().parents[1]
BUSI_CV = REPO / "docs" / "results" / "busi-cv" / "results.json"
BUSI_DATA = {"spec": "busi:/home/someone/private/Dataset_BUSI_with_GT", "images": 647,
             "counts": {"benign": 437, "malignant": 210}, "train_counts": {"benign": 372, "malignant": 178},
             "val_counts": {"benign": 65, "malignant": 32}}
PAYLOAD = {"config": {"epochs": 12, "batch_size": 12, "lr": 1e-4, "seed": 0, "model": {"image_size": 128}},
           "epoch": 12, "selected_by": "validation score"}


def _metadata(**changes: object) -> ModelMetadata:
    return ModelMetadata("mtl_cosa", "resnet18", 128, cosa_edge_version="0.1.0", weights_sha256="ab" * 32,
                         training_data=BUSI_DATA).with_changes(**changes)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_card_states_intended_use_and_what_is_out_of_scope() -> None:
    card = build_model_card(_metadata(), PAYLOAD)
    assert card.splitlines()[2] == f"**{INTENDED_USE}**"
    for item in (*OUT_OF_SCOPE, LESION_FREE_OUT_OF_SCOPE):
        assert f"- {item}" in card
    for words in ("Diagnosis", "Screening decisions", "other than those of the training data", "Colour Doppler",
                  "elastography", "Lesion-free screening"):
        assert words in card
    assert "No cross-validated performance is attached to this model" in card
    assert "not calibrated" in card and "No lesion-presence threshold is attached" in card


def test_busi_card_gives_the_datasets_provenance_and_limitations() -> None:
    card = _flat(build_model_card(_metadata(), PAYLOAD))
    assert "Al-Dhabyani" in card and "Data in Brief 28 (2020) 104863" in card
    for fact in ("2018", "Baheya Hospital for Early Detection & Treatment of Women's Cancer, Cairo, Egypt",
                 "LOGIQ E9 and LOGIQ E9 Agile", "600 women aged 25 to 75", "780 images: 133 normal, 437 benign, "
                 "210 malignant"):
        assert fact in card, fact
    for limitation in BUSI_LIMITATIONS:
        assert _flat(limitation) in card
    assert "647 (437 benign, 210 malignant)" in card
    assert "/home/someone" not in card  # the data's folder stays out of the card


def test_other_data_gets_no_busi_provenance() -> None:
    card = build_model_card(_metadata(training_data={"spec": "phantom:24", "images": 24}), PAYLOAD)
    assert "Baheya" not in card and "LOGIQ" not in card
    assert "synthetic ultrasound phantoms" in card and "has seen no real ultrasound image" in card
    assert "Not recorded" in build_model_card(_metadata(training_data={}), {})


def test_presence_and_calibration_when_the_model_has_them() -> None:
    presence = {"min_lesion_share": 0.004, "chosen_on": "validation: 20 lesion and 6 lesion-free images",
                "validation": {"lesion_images": 20, "lesion_free_images": 6, "sensitivity": 0.95, "specificity": 0.5}}
    card = _flat(build_model_card(_metadata(presence=presence, calibration={"temperature": 1.7, "fitted_on": "val"}),
                                  PAYLOAD))
    assert "covers at least 0.40% of the region of interest" in card and "20 lesion and 6 lesion-free" in card
    assert "sensitivity 95.0%, specificity 50.0%" in card and "T = 1.7" in card
    assert LESION_FREE_OUT_OF_SCOPE not in card
    default = {"min_lesion_share": 0.002, "chosen_on": "default: the validation data held no lesion-free images"}
    assert LESION_FREE_OUT_OF_SCOPE in _flat(build_model_card(_metadata(presence=default), PAYLOAD))
    # A temperature training did not keep is not called a scaling: the card says T = 1 and why.
    rejected = {"temperature": 1.0, "fitted_on": "none: on the validation: 32 lesion images, the fitted temperature "
                                                 "0.05 lies at an end of its search range"}
    card = _flat(build_model_card(_metadata(calibration=rejected), PAYLOAD))
    assert "not temperature-scaled (T = 1): on the validation: 32 lesion images, the fitted temperature 0.05" in card
    assert "are temperature-scaled" not in card


def test_cross_validation_figures_with_their_spread() -> None:
    folds = json.loads(BUSI_CV.read_text())["results"]["mtl_cosa"]["folds"]
    dsc = [f["segmentation"]["DSC"] * 100 for f in folds]
    card = build_model_card(_metadata(), PAYLOAD, read_cv_results(BUSI_CV, "mtl_cosa"))
    assert "No cross-validated performance" not in card
    assert "5-fold cross-validation on `busi`" in card and "not this checkpoint" in card
    assert f"| Dice (DSC), per image (%) | 60.5 ± 2.8 | {min(dsc):.1f}–{max(dsc):.1f} | 5 |" in card
    assert "| AUC (benign vs malignant) | 0.883 ± 0.035 |" in card
    assert "| Sensitivity (malignant positive) (%) | 60.0 ± 13.5 |" in card
    phantom = _metadata(training_data={"spec": "phantom:24"})
    assert "the figures do not describe it" in build_model_card(phantom, PAYLOAD, read_cv_results(BUSI_CV, "mtl_cosa"))


def test_a_run_with_lesion_free_images_puts_presence_calibration_and_the_gate_on_the_card() -> None:
    """docs/results/busi-cv-normal-recipe: trained with BUSI's normal images; docs/results/busi-cv (without them)
    has no presence."""
    with_normal = REPO / "docs" / "results" / "busi-cv-normal-recipe" / "results.json"
    folds = json.loads(with_normal.read_text())["results"]["mtl_cosa"]["folds"]
    specificity = [f["presence"]["specificity"] * 100 for f in folds]
    card = build_model_card(_metadata(), PAYLOAD, read_cv_results(with_normal, "mtl_cosa"))
    assert (f"| Lesion presence: lesion-free images called lesion-free (%) | 61.0 ± 12.3 | "
            f"{min(specificity):.1f}–{max(specificity):.1f} | 5 |") in card
    assert "| Lesion presence: lesion images that keep their lesion (%) | 94.0 ± 4.8 |" in card
    assert "| Expected calibration error of the class probabilities, unscaled (%) | 8.8 ± 2.0 |" in card
    assert "| Held-out images the out-of-distribution gate lets through (%) | 98.6 ± 1.2 |" in card
    without = build_model_card(_metadata(), PAYLOAD, read_cv_results(BUSI_CV, "mtl_cosa"))
    assert "Lesion presence:" not in without


def test_bad_cross_validation_results_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CosaEdgeError, match="holds no cross-validation of mtl_sa .*it has mtl_cosa"):
        read_cv_results(BUSI_CV, "mtl_sa")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(CosaEdgeError, match="is not a cross-validation results.json"):
        read_cv_results(tmp_path / "x.json", "mtl_cosa")
    with pytest.raises(CosaEdgeError, match="do not exist"):
        read_cv_results(tmp_path / "missing.json", "mtl_cosa")


@pytest.fixture(scope="module")
def busi_checkpoint(trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture model relabelled as trained on BUSI (its weights, and their hash, unchanged)."""
    import torch

    from cosa_edge.train.checkpoint import load_checkpoint

    payload = load_checkpoint(trained_checkpoint).to_payload()
    payload["data"] = {**payload.get("data", {}), **BUSI_DATA}
    path = tmp_path_factory.mktemp("busi") / "best.pt"
    torch.save(payload, path)
    return path


def test_export_writes_the_card_beside_the_model_and_into_it(busi_checkpoint: Path, tmp_path: Path) -> None:
    from cosa_edge.engines.artifact import scan_onnx
    from cosa_edge.export.onnx_export import export_onnx

    result = export_onnx(busi_checkpoint, tmp_path / "model.onnx", cv_results=BUSI_CV)
    assert result.card == tmp_path / "model.card.md" == card_path(tmp_path / "model.onnx")
    card = result.card.read_text()
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    metadata = ModelMetadata.from_props(props, "model.onnx")
    assert metadata.model_card == card == result.metadata.model_card
    assert f"ONNX graph SHA-256: `{scan_onnx((tmp_path / 'model.onnx').read_bytes())[0]}`" in card
    assert INTENDED_USE in card and "Baheya Hospital" in card
    assert "| AUC (benign vs malignant) | 0.883 ± 0.035 |" in card
    assert not list(tmp_path.glob(".*tmp"))  # written atomically: no temporary file left


def test_cli_export_with_cv_results(trained_checkpoint: Path, tmp_path: Path) -> None:
    from cosa_edge.cli import cli

    result = CliRunner().invoke(cli, ["export", str(trained_checkpoint), "-o", str(tmp_path / "m.onnx"),
                                      "--parity-data", "none", "--cv-results", str(BUSI_CV)])
    assert result.exit_code == 0, result.output
    assert "model card" in result.output and (tmp_path / "m.card.md").is_file()
    card = (tmp_path / "m.card.md").read_text()
    # The fixture was trained without a data summary: the card says what it does not know, and no provenance.
    assert "Not recorded in the checkpoint" in card and "Baheya" not in card
    assert "does not record its training data" in card and "| Dice (DSC), per image (%) | 60.5 ± 2.8 |" in card
    result = CliRunner().invoke(cli, ["export", str(trained_checkpoint), "-o", str(tmp_path / "n.onnx"),
                                      "--parity-data", "none", "--cv-results", str(tmp_path / "none.json")])
    assert result.exit_code == 1 and "do not exist" in result.output and not (tmp_path / "n.onnx").exists()
