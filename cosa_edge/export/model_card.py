"""The model card written at export: what the model is, what it learnt from, what it may not be used for.

`cosa-edge export` writes it beside the model (``model.card.md``) and into the model's
metadata (``cosa_edge.model_card``), so that it travels with every engine built from
the export. It says no more than the checkpoint and the optional cross-validation
results support: without them, it says that nothing is attached. numpy-free and
torch-free (it reads plain dicts), so it is tested without a model.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contract import INTENDED_USE, ModelMetadata
from ..errors import CosaEdgeError

DISPLAY_NAMES = {"uresnet": "UResNet", "resnet": "ResNet", "vgg16": "VGG-16", "lenet": "LeNet", "mtl": "MTL",
                 "mtl_sa": "MTL-SA", "mtl_cosa": "MTL-COSA"}

OUT_OF_SCOPE = (
    "Diagnosis, or any decision about a patient's care: the outputs are research measurements, not findings.",
    "Screening decisions (whom to recall, refer, biopsy or discharge).",
    "Images from scanners, centres or populations other than those of the training data, until the model has been "
    "validated on them.",
    "Colour Doppler, elastography or any image that is not B-mode breast ultrasound (mammography, MRI, photographs, "
    "other organs).",
)
LESION_FREE_OUT_OF_SCOPE = (
    "Lesion-free screening (deciding whether a lesion is there at all): this model's lesion-presence threshold was "
    "not chosen on lesion-free images, and its classifier was trained on lesions only, so a class on a frame "
    "without a lesion means nothing."
)

BUSI_CITATION = ('W. Al-Dhabyani, M. Gomaa, H. Khaled, A. Fahmy, "Dataset of breast ultrasound images", '
                 "Data in Brief 28 (2020) 104863")
#: What the BUSI paper states about where the data came from; nothing here goes beyond it.
BUSI_PROVENANCE = (
    "Collected in 2018 at one centre, Baheya Hospital for Early Detection & Treatment of Women's Cancer, Cairo, Egypt.",
    "Scanners: GE LOGIQ E9 and LOGIQ E9 Agile.",
    "600 women aged 25 to 75; 780 images: 133 normal, 437 benign, 210 malignant (PNG, about 500 x 500 pixels "
    "on average), with lesion masks.",
)
BUSI_LIMITATIONS = (
    "Near-duplicate images: the same lesion appears in several images (cosa-edge finds 149 pairs within 6 bits of a "
    "64-bit perceptual hash), so a random split overstates performance; `cosa-edge cv` keeps them in one fold.",
    "On-screen annotations (calipers, markers, text) in some images, which a model can learn as a shortcut.",
    "About 2:1 benign to malignant (437 to 210): accuracy alone flatters a model that favours benign.",
    "One centre and one scanner family: how the model does on other scanners, settings, centres and populations "
    "is unknown.",
    "No external validation yet: every figure below, if any, comes from BUSI itself.",
)
DATA_DESCRIPTIONS = {
    "phantom": "synthetic ultrasound phantoms made by cosa-edge: this model has seen no real ultrasound image, and "
               "its outputs on real images mean nothing",
    "udiat": "UDIAT Dataset B (Yap et al. 2017)",
    "folder": "a user-supplied folder of images and masks; its provenance is not recorded",
}

#: The cross-validation figures a card reports: (section in a fold's metrics, dotted where nested; key; label;
#: shown as a percentage). Figures a run did not measure (presence without lesion-free images) are left out.
CV_METRICS = (
    ("segmentation", "DSC", "Dice (DSC), per image", True),
    ("segmentation", "mIoU", "mIoU (lesion and background), per image", True),
    ("segmentation", "TPR", "Segmentation TPR, per image", True),
    ("segmentation", "FPR", "Segmentation FPR, per image", True),
    ("classification_clinical", "sensitivity", "Sensitivity (malignant positive)", True),
    ("classification_clinical", "specificity", "Specificity (benign called benign)", True),
    ("classification_clinical", "PPV", "PPV (malignant positive)", True),
    ("classification_clinical", "NPV", "NPV", True),
    ("classification_clinical", "ACC", "Accuracy", True),
    ("", "auc", "AUC (benign vs malignant)", False),
    ("presence", "sensitivity", "Lesion presence: lesion images that keep their lesion", True),
    ("presence", "specificity", "Lesion presence: lesion-free images called lesion-free", True),
    ("calibration.before", "ece", "Expected calibration error of the class probabilities, unscaled", True),
    ("calibration.after", "ece", "Expected calibration error, temperature-scaled (as the model reports them)", True),
    ("out_of_distribution", "kept", "Held-out images the out-of-distribution gate lets through", True),
)


def _fold_figure(fold: dict[str, Any], section: str, key: str) -> Any:
    node: Any = fold
    for part in [p for p in section.split(".") if p]:
        node = node.get(part) if isinstance(node, dict) else None
    return node.get(key) if isinstance(node, dict) else None


def card_path(model_path: Path) -> Path:
    """``model.onnx`` -> ``model.card.md``, beside it."""
    return Path(model_path).with_suffix(".card.md")


def data_kind(spec: str) -> str:
    """A data spec's kind without its path (``busi:/home/x/busi`` -> ``busi``): folder names stay out of the card."""
    return str(spec).split(":", 1)[0].strip().lower() if spec else ""


@dataclass(frozen=True)
class CvRow:
    label: str
    values: tuple[float, ...]  # one per fold that has the figure
    percent: bool

    def cells(self) -> tuple[str, str]:
        scale, digits = (100.0, 1) if self.percent else (1.0, 3)
        values = [v * scale for v in self.values]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0  # sample SD, as in the cv tables
        return (f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}",
                f"{min(values):.{digits}f}–{max(values):.{digits}f}")


@dataclass(frozen=True)
class CvSummary:
    """Per-fold figures of one architecture from a `cosa-edge cv` results.json."""

    file_name: str
    data: str  # the kind of data cross-validated on, e.g. "busi"
    folds: int
    rows: tuple[CvRow, ...]


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def read_cv_results(path: Path, architecture: str) -> CvSummary:
    """The folds of ``architecture`` in a cross-validation results.json (docs/results/busi-cv/results.json's format)."""
    path = Path(path)
    if not path.is_file():
        raise CosaEdgeError(f"cross-validation results {path} do not exist; pass the results.json `cosa-edge cv` wrote")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        results = document["results"]
        available = sorted(results)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        raise CosaEdgeError(f"{path} is not a cross-validation results.json; pass the one `cosa-edge cv` "
                            "wrote") from None
    if architecture not in results:
        raise CosaEdgeError(f"{path} holds no cross-validation of {architecture} (it has "
                            f"{', '.join(available) or 'none'}); pass the results of the same architecture")
    folds = results[architecture].get("folds") or []
    rows = []
    for section, key, label, percent in CV_METRICS:
        values = [_finite(_fold_figure(fold, section, key)) for fold in folds]
        present = tuple(v for v in values if v is not None)
        if present:
            rows.append(CvRow(label, present, percent))
    if not rows:
        raise CosaEdgeError(f"{path} has no per-fold figures for {architecture}; pass the results.json `cosa-edge cv` "
                            "wrote")
    return CvSummary(path.name, data_kind(document.get("data", "")), len(folds), tuple(rows))


def _bullets(items: tuple[str, ...] | list[str]) -> list[str]:
    return [f"- {item}" for item in items]


def _presence_is_chosen(presence: dict[str, Any]) -> bool:
    """Chosen on validation data that held lesion-free images, not the default that stands without them."""
    return bool(presence) and "min_lesion_share" in presence and \
        not str(presence.get("chosen_on", "default")).startswith("default")


def _counts(counts: Any) -> str:
    if not isinstance(counts, dict) or not counts:
        return "per-class counts not recorded"
    return ", ".join(f"{n} {name}" for name, n in counts.items())


def _training_section(metadata: ModelMetadata, checkpoint: dict[str, Any]) -> list[str]:
    data = metadata.training_data or {}
    kind = data_kind(data.get("spec", ""))
    config = checkpoint.get("config") or {}
    model = config.get("model") or {}
    lines = ["## Training data", ""]
    if kind == "busi":
        lines.append(f"BUSI, the Breast Ultrasound Images dataset ({BUSI_CITATION}).")
    elif kind in DATA_DESCRIPTIONS:
        lines.append(f"`{kind}`: {DATA_DESCRIPTIONS[kind]}.")
    else:
        lines.append("Not recorded in the checkpoint.")
    lines += ["", *_bullets([
        f"Images used: {data.get('images', 'not recorded')} ({_counts(data.get('counts'))}).",
        f"Trained on: {_counts(data.get('train_counts'))}; held out for validation: {_counts(data.get('val_counts'))}.",
        f"Training: {config.get('epochs', '?')} epochs planned; this checkpoint is epoch "
        f"{checkpoint.get('epoch', '?')}, selected by: {checkpoint.get('selected_by', 'the last epoch written')}; "
        f"encoder {_initialisation(model)}; "
        f"{model.get('image_size', metadata.input_size)} px; batch {config.get('batch_size', '?')}; "
        f"learning rate {config.get('lr', '?')}; seed {config.get('seed', '?')}.",
    ])]
    if kind == "busi":
        lines += ["", "Provenance, as the dataset's paper states it:", "", *_bullets(BUSI_PROVENANCE), "",
                  "Known limitations of the data:", "", *_bullets(BUSI_LIMITATIONS)]
    return lines


def _initialisation(model: dict[str, Any]) -> str:
    """How the encoder started, naming the weights, their provenance and licence where they are known."""
    if not model.get("pretrained"):
        return "trained from scratch"
    from ..model.lite_weights import LITE_WEIGHTS  # here: cosa_edge.model's package imports torch

    lite = LITE_WEIGHTS.get(model.get("encoder", ""))
    if lite is not None and model["pretrained"] == "imagenet":
        return f"initialised from the {lite.provenance}"
    if model["pretrained"] == "imagenet":
        return "initialised from torchvision's ImageNet-1k weights (IMAGENET1K_V1)"
    return f"initialised from ImageNet weights in {Path(str(model['pretrained'])).name}"


def _presence_section(metadata: ModelMetadata) -> list[str]:
    presence, lines = metadata.presence or {}, ["## Lesion presence and calibration", ""]
    if "min_lesion_share" in presence:
        how = presence.get("chosen_on", "not recorded")
        lines.append(f"- A frame holds a lesion only where the mask (lesion probability > 0.5) covers at least "
                     f"{float(presence['min_lesion_share']):.2%} of the region of interest; below it, no class is "
                     f"given. Chosen on: {how}.")
        validation = presence.get("validation") or {}
        if validation.get("sensitivity") is not None or validation.get("specificity") is not None:
            lines.append(f"  On that validation data: {validation.get('lesion_images', '?')} lesion images, "
                         f"{validation.get('lesion_free_images', '?')} lesion-free; presence sensitivity "
                         f"{_ratio(validation.get('sensitivity'))}, specificity "
                         f"{_ratio(validation.get('specificity'))}.")
    else:
        lines.append("- No lesion-presence threshold is attached: every frame gets a benign/malignant class, whether "
                     "or not it shows a lesion.")
    temperature = (metadata.calibration or {}).get("temperature")
    fitted_on = (metadata.calibration or {}).get("fitted_on", "data not recorded")
    if temperature is not None and str(fitted_on).startswith("none"):
        # Training fitted none, or kept none (too few images, no gain on held-out parts, T at its range's end).
        reason = str(fitted_on).removeprefix("none: ")
        lines.append(f"- Class probabilities are not temperature-scaled (T = 1): {reason}.")
    elif temperature is not None:
        lines.append(f"- Class probabilities are temperature-scaled (T = {float(temperature):.3g}, fitted on "
                     f"{fitted_on}).")
    else:
        lines.append("- Class probabilities are not calibrated: read them as scores that rank images, not as the "
                     "chance that a lesion is malignant.")
    return lines


def _ratio(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "not measured"


def _cv_section(metadata: ModelMetadata, cv: CvSummary | None) -> list[str]:
    lines = ["## Cross-validated performance", ""]
    if cv is None:
        return lines + ["No cross-validated performance is attached to this model. Until there is, nothing is known "
                        "about how well it segments or classifies images it was not trained on "
                        "(`cosa-edge export --cv-results results.json` attaches a `cosa-edge cv` run)."]
    trained_on = data_kind((metadata.training_data or {}).get("spec", ""))
    lines.append(f"From `{cv.file_name}`: {cv.folds}-fold cross-validation on `{cv.data or 'unrecorded data'}`. Each "
                 "fold trained its own model with the same recipe and scored it on the images it held out, so these "
                 "figures describe the recipe on this data, not this checkpoint, and say nothing about other "
                 "scanners or centres.")
    if cv.data and trained_on and cv.data != trained_on:
        lines.append(f"**Caution:** the cross-validation ran on `{cv.data}`, but this model was trained on "
                     f"`{trained_on}`; the figures do not describe it.")
    elif not trained_on:
        lines.append("**Caution:** the checkpoint does not record its training data, so whether these figures "
                     "describe its recipe is unknown.")
    lines += ["", "| figure | mean ± SD over folds | min–max | folds |", "|---|---|---|---|"]
    for row in cv.rows:
        mean_sd, spread = row.cells()
        lines.append(f"| {row.label}{' (%)' if row.percent else ''} | {mean_sd} | {spread} | {len(row.values)} |")
    return lines


def build_model_card(metadata: ModelMetadata, checkpoint: dict[str, Any], cv: CvSummary | None = None,
                     graph_sha256: str = "") -> str:
    """The card in Markdown. ``checkpoint``: how the checkpoint was trained, as plain data (config, epoch,
    selected_by: ``Checkpoint.training_record()``)."""
    name = DISPLAY_NAMES.get(metadata.architecture, metadata.architecture)
    presence_chosen = _presence_is_chosen(metadata.presence or {})
    lines = [
        f"# Model card: {name} ({metadata.encoder}, {metadata.input_size} px)", "",
        f"**{INTENDED_USE}**", "",
        "## Model", "",
        *_bullets([
            f"Architecture: `{metadata.architecture}` ({name}); encoder `{metadata.encoder}`; input "
            f"{metadata.input_size} x {metadata.input_size} grey levels of B-mode ultrasound.",
            f"Outputs: a lesion probability per pixel (mask = probability > 0.5) and class probabilities over "
            f"({', '.join(metadata.class_names)}).",
            f"Exported by cosa-edge {metadata.cosa_edge_version or '?'} at {metadata.precision.upper()}, "
            f"region maps as {'standard ONNX ops' if metadata.cosa_op == 'onnx' else 'the TensorRT plugin node'}.",
            f"Weights SHA-256: `{metadata.weights_sha256 or 'not recorded'}`.",
            *([f"ONNX graph SHA-256: `{graph_sha256}` (checked whenever the model is loaded; engines built from it "
               "carry their own)."] if graph_sha256 else []),
        ]), "",
        "## Intended use", "",
        f"{INTENDED_USE} For research on segmenting and classifying breast lesions in B-mode ultrasound: to measure "
        "the method, compare it with others and study its failures. Its outputs must not inform the care of any "
        "patient.", "",
        "## Out of scope", "",
        *_bullets([*OUT_OF_SCOPE, *([] if presence_chosen else [LESION_FREE_OUT_OF_SCOPE])]), "",
        *_training_section(metadata, checkpoint), "",
        *_presence_section(metadata), "",
        *_cv_section(metadata, cv), "",
    ]
    return "\n".join(lines)
