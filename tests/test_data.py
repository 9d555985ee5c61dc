from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cosa_edge.data import load_dataset, preprocess, resize_grey
from cosa_edge.data.augment import augment
from cosa_edge.data.busi import load_busi
from cosa_edge.data.folder import load_folder, write_folder
from cosa_edge.data.phantom import make_phantom_dataset
from cosa_edge.data.udiat import load_udiat
from cosa_edge.errors import CosaEdgeError


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def make_busi(root: Path) -> Path:
    """A tiny BUSI in the published layout, with the cases that trip loaders up."""
    base = root / "Dataset_BUSI_with_GT"
    image = np.full((40, 50), 100, np.uint8)
    _write(base / "benign" / "benign (1).png", image)
    mask = np.zeros((40, 50), np.uint8)
    mask[5:15, 5:15] = 255
    _write(base / "benign" / "benign (1)_mask.png", mask)
    second = np.zeros((40, 50), np.uint8)
    second[10:20, 10:30] = 255  # overlaps the first: a uint8 sum would wrap 255 + 255 to 254
    _write(base / "benign" / "benign (1)_mask_1.png", second)
    _write(base / "benign" / "benign (2).png", np.dstack([image] * 3))  # stored as RGB
    _write(base / "benign" / "benign (2)_mask.png", mask)
    _write(base / "malignant" / "malignant (1).png", image)
    _write(base / "malignant" / "malignant (1)_mask.png", mask)
    return base


def test_busi_reader_takes_the_union_of_masks_and_accepts_rgb(tmp_path: Path) -> None:
    samples = load_busi(make_busi(tmp_path).parent, progress=False)  # the parent folder works too
    assert [s.name for s in samples] == ["benign/benign (1)", "benign/benign (2)", "malignant/malignant (1)"]
    assert [s.label for s in samples] == [0, 0, 1]
    first = samples[0]
    assert first.mask.dtype == bool and first.mask.sum() == 100 + 200 - 25  # |A ∪ B| = |A| + |B| − |A ∩ B|
    assert samples[1].image.ndim == 2


def test_busi_bad_inputs_give_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CosaEdgeError, match="does not exist"):
        load_busi(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CosaEdgeError, match="not in BUSI's layout"):
        load_busi(tmp_path / "empty")
    base = make_busi(tmp_path / "a")
    (base / "malignant" / "malignant (1)_mask.png").unlink()
    with pytest.raises(CosaEdgeError, match=r"malignant \(1\)\.png has no mask"):
        load_busi(base, progress=False)
    base = make_busi(tmp_path / "b")
    _write(base / "benign" / "benign (2)_mask.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(CosaEdgeError, match="masks must have their image's size"):
        load_busi(base, progress=False)
    base = make_busi(tmp_path / "c")
    (base / "benign" / "benign (1).png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(CosaEdgeError, match="cannot decode image"):
        load_busi(base, progress=False)
    base = tmp_path / "d" / "Dataset_BUSI_with_GT"
    (base / "benign").mkdir(parents=True)
    (base / "malignant").mkdir()
    with pytest.raises(CosaEdgeError, match="has no images"):
        load_busi(base, progress=False)


def test_real_busi_has_647_images_and_17_multi_mask_unions(busi_path: Path) -> None:
    samples = load_busi(busi_path, progress=False)
    assert len(samples) == 647
    assert sum(s.label == 0 for s in samples) == 437 and sum(s.label == 1 for s in samples) == 210
    multi = [s for s in samples if s.extra["masks"] != "1"]
    assert len(multi) == 17
    assert all(s.mask.any() for s in samples)


def _udiat(root: Path, sheet: str) -> Path:
    image = np.full((30, 30), 80, np.uint8)
    mask = np.zeros((30, 30), np.uint8)
    mask[10:20, 10:20] = 255
    for stem in ("000001", "000002"):
        _write(root / "original" / f"{stem}.png", image)
        _write(root / "GT" / f"{stem}.png", mask)
    rows = [("Image", "Type", "Histology"), ("000001", "Benign", "FA"), ("2", "Malignant", "IDC")]
    if sheet == "csv":
        (root / "DatasetB.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    else:
        openpyxl = pytest.importorskip("openpyxl")
        book = openpyxl.Workbook()
        for row in rows:
            book.active.append([int(row[0]) if row[0].isdigit() and row[0] != "000001" else row[0], *row[1:]])
        book.save(root / "DatasetB.xlsx")
    return root


@pytest.mark.parametrize("sheet", ["csv", "xlsx"])
def test_udiat_reader(tmp_path: Path, sheet: str) -> None:
    samples = load_udiat(_udiat(tmp_path, sheet), progress=False)
    assert [(s.name, s.label) for s in samples] == [("000001", 0), ("000002", 1)]
    assert samples[1].extra["histology"] == "IDC"
    assert samples[0].mask.sum() == 100


def test_udiat_bad_layout(tmp_path: Path) -> None:
    with pytest.raises(CosaEdgeError, match="Dataset B's layout"):
        load_udiat(tmp_path)
    root = _udiat(tmp_path / "x", "csv")
    (root / "DatasetB.csv").write_text("Image,Type\n000001,Unknown\n")
    with pytest.raises(CosaEdgeError, match="expected Benign or Malignant"):
        load_udiat(root, progress=False)


def test_folder_round_trip(tmp_path: Path) -> None:
    samples = make_phantom_dataset(4, seed=1, size=(64, 64))
    write_folder(samples, tmp_path / "set")
    loaded = load_folder(tmp_path / "set", progress=False)
    assert [s.label for s in loaded] == [s.label for s in samples]
    for a, b in zip(samples, loaded):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.mask, b.mask)


def test_data_specs(tmp_path: Path) -> None:
    assert len(load_dataset("phantom:5", phantom_size=64)) == 5
    with pytest.raises(CosaEdgeError, match="unknown data spec"):
        load_dataset("imagenet:/x")
    with pytest.raises(CosaEdgeError, match="needs a path"):
        load_dataset("busi")
    with pytest.raises(CosaEdgeError, match="takes a count"):
        load_dataset("phantom:many")
    with pytest.raises(CosaEdgeError, match="at least one image"):
        load_dataset("phantom:0")


def test_preprocess_handles_any_frame() -> None:
    colour = np.zeros((300, 400, 3), np.uint8)
    colour[..., 2] = 255  # pure red in BGR
    grey16 = np.full((100, 120), 65535, np.uint16)
    for frame in (colour, grey16, np.zeros((50, 60), np.uint8), np.zeros((50, 60, 4), np.uint8)):
        x = preprocess(frame, 64)
        assert x.shape == (1, 64, 64) and x.dtype == np.float32
    assert resize_grey(grey16, 32).max() == 255
    red = resize_grey(colour, 32)
    assert red.max() == red.min() == round(0.299 * 255)  # OpenCV's luma weights
    with pytest.raises(ValueError, match="region of interest"):
        resize_grey(colour, 32, roi=(500, 500, 10, 10))


def test_augment_is_deterministic_per_generator_and_keeps_mask_binary() -> None:
    sample = make_phantom_dataset(1, seed=2, size=(64, 64))[0]
    a = augment(sample.image, sample.mask, np.random.default_rng([0, 3, 7]))
    b = augment(sample.image, sample.mask, np.random.default_rng([0, 3, 7]))
    c = augment(sample.image, sample.mask, np.random.default_rng([0, 4, 7]))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[1].dtype == bool and 0.5 < a[1].sum() / sample.mask.sum() < 1.5
