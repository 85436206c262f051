"""Users' own datasets: ``.npz`` arrays and image folders, checked against the arrays written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from accelsim import DatasetError, load_dataset


def _images(rng, n, c, h=6, w=5):
    return rng.integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


@pytest.mark.parametrize("layout", ["nchw", "nhwc", "gray-3d"])
def test_npz_layouts_all_give_n_c_h_w(tmp_path: Path, rng, layout) -> None:
    c = 1 if layout == "gray-3d" else 3
    images = _images(rng, 7, c)
    labels = rng.integers(0, 10, size=7)
    stored = {
        "nchw": images,
        "nhwc": images.transpose(0, 2, 3, 1),
        "gray-3d": images[:, 0],
    }[layout]
    np.savez(tmp_path / "d.npz", images=stored, labels=labels)
    for split in ("train", "test"):  # one set serves every split
        ds = load_dataset(str(tmp_path / "d.npz"), split)
        np.testing.assert_array_equal(ds.images, images)
        np.testing.assert_array_equal(ds.labels, labels)
        assert ds.images.dtype == np.uint8
        assert ds.labels.dtype == np.uint8


def test_npz_with_train_and_test_arrays(tmp_path: Path, rng) -> None:
    tr, te = _images(rng, 5, 1), _images(rng, 3, 1)
    np.savez(tmp_path / "d.npz", train_images=tr, train_labels=[0, 1, 2, 3, 4],
             test_images=te, test_labels=[2, 2, 1])  # fmt: skip
    np.testing.assert_array_equal(load_dataset(str(tmp_path / "d.npz"), "train").images, tr)
    test = load_dataset(str(tmp_path / "d.npz"), "test", n_images=2)
    np.testing.assert_array_equal(test.images, te[:2])
    assert test.labels.tolist() == [2, 2]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros(3)}, r"holds \['x'\]; expected 'images' and 'labels'"),
        ({"images": np.zeros((2, 4, 4), np.float32), "labels": [0, 1]}, "must be uint8"),
        ({"images": np.zeros((2, 4, 4), np.uint8), "labels": [0]}, "2 images need 2 labels"),
        ({"images": np.zeros((2, 4, 4), np.uint8), "labels": [0, 300]}, "labels must be 0..255"),
        ({"images": np.zeros((2, 4, 4), np.uint8), "labels": [0.5, 1]}, "must be integers"),
        ({"images": np.zeros((2, 5, 4, 4), np.uint8), "labels": [0, 1]}, "C in {1, 3}"),
        ({"images": np.array([None, 1], object), "labels": [0, 1]}, "without pickle"),
    ],
)
def test_bad_npz_files_are_named_in_one_line(tmp_path: Path, arrays, message) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(str(tmp_path / "bad.npz"), "test")
    assert "bad.npz" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_corrupt_npz_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DatasetError, match=r"not a readable \.npz"):
        load_dataset(str(tmp_path / "bad.npz"), "test")


def _write_folder(root: Path, images: np.ndarray, labels, classes, suffix=".png") -> None:
    for k, (img, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        arr = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        Image.fromarray(arr).save(folder / f"{k:03d}{suffix}")


@pytest.mark.parametrize("channels", [1, 3])
def test_image_folder_with_splits(tmp_path: Path, rng, channels) -> None:
    classes = ["cat", "dog", "emu"]  # sorted: label 0 is cat
    tr, te = _images(rng, 6, channels), _images(rng, 4, channels)
    _write_folder(tmp_path / "train", tr, [2, 0, 1, 1, 0, 2], classes)
    _write_folder(tmp_path / "test", te, [1, 1, 0, 2], classes)
    train = load_dataset(str(tmp_path), "train")
    # files are read class by class in sorted order
    order = [1, 4, 2, 3, 0, 5]
    np.testing.assert_array_equal(train.images, tr[order])
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    test = load_dataset(str(tmp_path), "test")
    np.testing.assert_array_equal(test.images, te[[2, 0, 1, 3]])
    assert test.labels.tolist() == [0, 1, 1, 2]


def test_image_folder_without_splits_serves_both(tmp_path: Path, rng) -> None:
    images = _images(rng, 3, 3)
    _write_folder(tmp_path, images, [0, 1, 0], ["a", "b"])
    for split in ("train", "test"):
        ds = load_dataset(str(tmp_path), split)
        assert ds.labels.tolist() == [0, 0, 1]
        assert ds.images.shape == (3, 3, 6, 5)


def test_image_folder_problems(tmp_path: Path, rng) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class subfolders"):
        load_dataset(str(tmp_path / "empty"), "test")
    _write_folder(tmp_path / "sizes", _images(rng, 1, 1), [0], ["a"])
    _write_folder(tmp_path / "sizes", _images(rng, 1, 1, 7, 7), [0], ["b"])
    with pytest.raises(DatasetError, match=r"size 7 x 7, but 000.png is 5 x 6"):
        load_dataset(str(tmp_path / "sizes"), "test")
    _write_folder(tmp_path / "only" / "train", _images(rng, 1, 1), [0], ["a"])
    with pytest.raises(DatasetError, match="has train/ but no test/ folder"):
        load_dataset(str(tmp_path / "only"), "test")
    with pytest.raises(DatasetError, match="a user's dataset has train and test"):
        load_dataset(str(tmp_path / "sizes"), "sample")
    with pytest.raises(DatasetError, match="not found: expected mnist, cifar10"):
        load_dataset(str(tmp_path / "nothing.npz"), "test")
