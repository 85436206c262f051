"""IDX and CIFAR-10 binary readers on small files written here, and the data-folder resolver."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from accelsim.datasets import load_dataset, resolve_data_dir
from accelsim.datasets.loaders import read_idx
from accelsim.errors import DatasetError


def _idx(path: Path, arr: np.ndarray, *, gz: bool) -> None:
    head = bytes([0, 0, 0x08, arr.ndim]) + np.array(arr.shape, ">i4").tobytes()
    data = head + arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)


def _mnist(
    root: Path, rng: np.random.Generator, n: int = 5, *, gz: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    _idx(root / "mnist" / f"t10k-images-idx3-ubyte{suffix}", images, gz=gz)
    _idx(root / "mnist" / f"t10k-labels-idx1-ubyte{suffix}", labels, gz=gz)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_round_trip(tmp_path: Path, rng: np.random.Generator, gz: bool) -> None:
    images, labels = _mnist(tmp_path, rng, gz=gz)
    ds = load_dataset("mnist", "test", data_dir=tmp_path)
    assert ds.images.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(ds.images[:, 0], images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert len(ds.head(2)) == 2
    assert len(ds.head(None)) == 5


def test_cifar_concatenates_training_batches(tmp_path: Path, rng: np.random.Generator) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    records = []
    for i, n in ((1, 3), (2, 4)):
        rec = rng.integers(0, 256, (n, 3073), dtype=np.uint8)
        rec[:, 0] %= 10
        records.append(rec)
        data = rec.tobytes()
        (folder / f"data_batch_{i}.bin.gz").write_bytes(gzip.compress(data)) if i == 1 else (
            folder / f"data_batch_{i}.bin"
        ).write_bytes(data)
    ds = load_dataset("cifar10", "train", data_dir=tmp_path)
    allrec = np.concatenate(records)
    assert ds.images.shape == (7, 3, 32, 32)
    np.testing.assert_array_equal(ds.labels, allrec[:, 0])
    # record layout: label, 1024 R, 1024 G, 1024 B, each row-major 32x32
    np.testing.assert_array_equal(ds.images[4, 1, 0, :5], allrec[4, 1025:1030])
    np.testing.assert_array_equal(ds.images[6, 2, 31, 31], allrec[6, 3072])


def test_bundled_sample_ships_2000_mnist_test_images() -> None:
    ds = load_dataset("mnist", "sample")
    assert ds.images.shape == (2000, 1, 28, 28)
    assert ds.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the official test order
    with pytest.raises(DatasetError, match="split 'sample' exists only for mnist"):
        load_dataset("cifar10", "sample")


def test_missing_dataset_says_where_it_looked_and_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError, match=r"mnist not found: looked for .*t10k-images-idx3-ubyte"
    ) as info:
        load_dataset("mnist", "test", data_dir=tmp_path)
    assert "python -m accelsim data fetch mnist" in str(info.value)
    with pytest.raises(DatasetError, match=r"data fetch cifar10"):
        load_dataset("cifar10", "test", data_dir=tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00", "bad magic"),
        (
            bytes([0, 0, 8, 1]) + np.array([4], ">i4").tobytes() + b"\x01\x02",
            r"shape \(4,\) \(12 bytes\), file has 10",
        ),
    ],
)
def test_malformed_idx(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        read_idx(path)


def test_truncated_gzip_and_bad_records(tmp_path: Path, rng: np.random.Generator) -> None:
    _mnist(tmp_path, rng)
    path = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset("mnist", "test", data_dir=tmp_path)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(b"\x00" * 3000)
    with pytest.raises(DatasetError, match="not a whole number of 3073-byte"):
        load_dataset("cifar10", "test", data_dir=tmp_path)


def test_mismatched_label_count(tmp_path: Path, rng: np.random.Generator) -> None:
    _mnist(tmp_path, rng)
    _idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.zeros(3, np.uint8), gz=True)
    with pytest.raises(DatasetError, match="3 labels for 5 images"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_resolve_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCELSIM_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("ACCELSIM_DATA")
    assert resolve_data_dir() == tmp_path / "cache" / "accelsim" / "datasets"


def test_unknown_names() -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'svhn'"):
        load_dataset("svhn", "test")
    with pytest.raises(DatasetError, match="unknown split 'val'"):
        load_dataset("mnist", "val")
