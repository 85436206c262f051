"""Load MNIST and CIFAR-10 from their official files, plain or gzipped, and users' own
datasets (``.npz`` arrays, image folders: ``accelsim.datasets.custom``).

Where data lives: ``data_dir`` (``--data-dir``) if given, else ``$ACCELSIM_DATA``, else the user
cache directory (``$XDG_CACHE_HOME/accelsim/datasets`` or ``~/.cache/accelsim/datasets``). This
module is the only place that reads ``ACCELSIM_DATA``. A small MNIST test sample (the first 2,000
test images) ships inside the package as split ``sample`` so that the default run works offline.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from accelsim.datasets import custom
from accelsim.errors import DatasetError

DATASET_NAMES = ("mnist", "cifar10")
SPLITS = ("train", "test", "sample")
SAMPLE_DIR = Path(__file__).parent / "sample"
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_DIR = "cifar-10-batches-bin"
_CIFAR_RECORD_BYTES = 3073
_IDX_DTYPES = {0x08: np.uint8}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images and labels of one split.

    images: uint8, shape (N, C, H, W), raw pixels 0..255. labels: uint8, shape (N,).
    """

    name: str
    split: str
    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.uint8]
    source: str

    def __post_init__(self) -> None:
        self.images.setflags(write=False)
        self.labels.setflags(write=False)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def head(self, n_images: int | None) -> Dataset:
        """The first ``n_images`` images (all when None or larger than the split)."""
        if n_images is None or n_images >= len(self):
            return self
        return Dataset(
            self.name, self.split, self.images[:n_images], self.labels[:n_images], self.source
        )


def resolve_data_dir(data_dir: Path | str | None = None) -> Path:
    """The folder datasets are read from (see module docstring for the order)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("ACCELSIM_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "accelsim" / "datasets"


def load_dataset(
    name: str,
    split: str,
    *,
    data_dir: Path | str | None = None,
    n_images: int | None = None,
    shape: tuple[int, ...] | None = None,
) -> Dataset:
    """Load ``split`` of dataset ``name``: a built-in one (DATASET_NAMES, SPLITS) or a user's
    ``.npz`` file or image folder (``accelsim.datasets.custom``). ``shape`` (C, H, W): the
    images a model takes; other images are refused naming the files."""
    data = _load(name, split, data_dir, n_images)
    if shape is not None and data.images.shape[1:] != tuple(shape):
        raise DatasetError(
            f"{data.source}: images are {' x '.join(map(str, data.images.shape[1:]))} (C x H x "
            f"W), the model takes {' x '.join(map(str, shape))}"
        )
    return data


def _load(name: str, split: str, data_dir: Path | str | None, n_images: int | None) -> Dataset:
    if name not in DATASET_NAMES:
        if not custom.is_custom(name):
            raise DatasetError(
                f"unknown dataset {name!r}; expected one of {DATASET_NAMES}, a .npz file or an "
                "image folder"
            )
        if split not in ("train", "test"):
            raise DatasetError(f"split {split!r} of {name}: a user's dataset has train and test")
        images, labels, source = custom.load_custom(name, split)
        return Dataset(name, split, images, labels, source).head(n_images)
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {SPLITS}")
    if split == "sample":
        if name != "mnist":
            raise DatasetError(f"split 'sample' exists only for mnist, not {name!r}")
        return _load_mnist(SAMPLE_DIR, "test", "sample").head(n_images)
    root = resolve_data_dir(data_dir)
    loader = _load_mnist if name == "mnist" else _load_cifar10
    return loader(root, split, split).head(n_images)


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem + ".bin"):
        for path in (folder / candidate, folder / (candidate + ".gz")):
            if path.is_file():
                return path
    return None


def _missing(name: str, root: Path, looked: list[Path]) -> DatasetError:
    where = ", ".join(str(p) for p in looked)
    return DatasetError(
        f"{name} not found: looked for {where} (data folder from {{parameter}}, else "
        f"ACCELSIM_DATA, else the user cache {root}); fetch it with `python -m accelsim data "
        f"fetch {name}` or point ACCELSIM_DATA at a folder holding {name}/ files",
        parameter="data_dir",
    )


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():  # a FIFO or a device would block or never end
        raise DatasetError(f"{path}: cannot read: not a regular file")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc


def read_idx(path: Path) -> npt.NDArray[np.uint8]:
    """Read one IDX file (magic 0x0000TTDD, big-endian int32 dims, then the data)."""
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file (bad magic {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: IDX header of {ndim} dimensions is truncated")
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">i4"))
    if min(dims, default=0) < 0:
        raise DatasetError(f"{path}: IDX header has a negative dimension {dims}")
    count = math.prod(dims) if dims else 0
    if len(raw) != header + count:
        raise DatasetError(
            f"{path}: IDX header says shape {dims} ({header + count} bytes), file has {len(raw)}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _load_mnist(root: Path, split: str, label: str) -> Dataset:
    folder = root / "mnist" if (root / "mnist").is_dir() else root
    img_stem, lbl_stem = _MNIST_FILES[split]
    img_path, lbl_path = _find(folder, img_stem), _find(folder, lbl_stem)
    if img_path is None or lbl_path is None:
        raise _missing(
            "mnist", root, [folder / (img_stem + "[.gz]"), folder / (lbl_stem + "[.gz]")]
        )
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1:
        raise DatasetError(f"{img_path}: expected (N, 28, 28) images, got {images.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(f"{lbl_path}: {labels.shape[0]} labels for {images.shape[0]} images")
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{lbl_path}: label {labels.max()} outside 0..9")
    return Dataset("mnist", label, images[:, None, :, :], labels, str(img_path))


def _cifar_files(folder: Path, split: str) -> list[Path]:
    stems = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    found = [_find(folder, stem) for stem in stems]
    return [p for p in found if p is not None]


def _load_cifar10(root: Path, split: str, label: str) -> Dataset:
    folder = root / _CIFAR_DIR
    files = _cifar_files(folder, split)
    if not files:
        stem = "test_batch" if split == "test" else "data_batch_{1..5}"
        raise _missing("cifar10", root, [folder / (stem + ".bin[.gz]")])
    parts = []
    for path in files:
        raw = _read_bytes(path)
        if len(raw) % _CIFAR_RECORD_BYTES:
            raise DatasetError(
                f"{path}: {len(raw)} bytes is not a whole number of {_CIFAR_RECORD_BYTES}-byte "
                "CIFAR-10 records"
            )
        parts.append(np.frombuffer(raw, dtype=np.uint8).reshape(-1, _CIFAR_RECORD_BYTES))
    records = np.concatenate(parts)
    labels = np.ascontiguousarray(records[:, 0])
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{files[0]}: label {labels.max()} outside 0..9")
    images = np.ascontiguousarray(records[:, 1:]).reshape(-1, 3, 32, 32)
    source = ", ".join(str(p) for p in files)
    return Dataset("cifar10", label, images, labels, source)
