"""Users' own datasets: an ``.npz`` of arrays or a folder of images, one subfolder per class.

**``.npz``** (read with ``allow_pickle=False``): ``images`` and ``labels`` (the file is every
split), or ``train_images`` / ``train_labels`` and ``test_images`` / ``test_labels``. Images are
uint8, N x H x W (one channel), N x H x W x C or N x C x H x W with C in {1, 3}; labels are
integers 0..255, one per image.

**Image folder**: ``ROOT/train/CLASS/*.png`` and ``ROOT/test/CLASS/*.png`` (JPEG too), or
``ROOT/CLASS/*`` for one set used as every split. Classes are the subfolder names in sorted
order (label 0 is the first), as Keras' ``image_dataset_from_directory`` and torchvision's
``ImageFolder`` number them; files are read in sorted order. All images of a set must have one
size; grayscale files give one channel, anything else RGB. Pillow reads them (matplotlib's own
dependency, so always installed with accelsim).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from accelsim.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_SPLIT_SETS = ("train", "test")


def is_custom(name: str) -> bool:
    """True when ``name`` names a file or folder rather than a built-in dataset."""
    return name.endswith(".npz") or "/" in name or "\\" in name or Path(name).exists()


def _nchw(images: np.ndarray, where: str) -> npt.NDArray[np.uint8]:
    if images.dtype != np.uint8:
        raise DatasetError(f"{where}: images must be uint8 (raw pixels 0..255), got {images.dtype}")
    if images.ndim == 3:
        return np.ascontiguousarray(images[:, None])
    if images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    if images.ndim == 4 and images.shape[1] in (1, 3):
        return np.ascontiguousarray(images)
    raise DatasetError(
        f"{where}: images must be N x H x W, N x H x W x C or N x C x H x W with C in {{1, 3}}, "
        f"got shape {images.shape}"
    )


def _labels(labels: np.ndarray, n: int, where: str) -> npt.NDArray[np.uint8]:
    if labels.ndim != 1 or labels.shape[0] != n:
        raise DatasetError(f"{where}: {n} images need {n} labels (1-D), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{where}: labels must be integers, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise DatasetError(f"{where}: labels must be 0..255, found {labels.min()}..{labels.max()}")
    return labels.astype(np.uint8)


def load_npz(path: Path, split: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(images N x C x H x W, labels, source) of ``split`` from an ``.npz`` file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if {"images", "labels"} <= keys:
                prefix = ""
            elif {f"{split}_images", f"{split}_labels"} <= keys:
                prefix = f"{split}_"
            else:
                raise DatasetError(
                    f"{path}: holds {sorted(keys)}; expected 'images' and 'labels', or "
                    f"'{split}_images' and '{split}_labels' for split {split!r}"
                )
            images, labels = z[prefix + "images"], z[prefix + "labels"]
    except DatasetError:
        raise
    except ValueError as exc:  # object arrays: pickles are refused
        raise DatasetError(f"{path}: cannot read without pickle ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from None
    where = f"{path} [{prefix}images]"
    images = _nchw(images, where)
    return images, _labels(labels, images.shape[0], f"{path} [{prefix}labels]"), str(path)


def _read_image(path: Path, gray: bool) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L" if gray else "RGB"), np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"{path}: cannot read the image ({exc})") from None
    return arr[None] if gray else arr.transpose(2, 0, 1)


def load_folder(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(images, labels, source) of ``split`` from an image folder (see the module docstring)."""
    folder = root / split if (root / split).is_dir() else root
    if folder == root and any((root / s).is_dir() for s in _SPLIT_SETS):
        found = [s for s in _SPLIT_SETS if (root / s).is_dir()]
        raise DatasetError(f"{root}: has {'/'.join(found)}/ but no {split}/ folder")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DatasetError(f"{folder}: no class subfolders (expected {folder}/CLASS/*.png)")
    if len(classes) > 256:
        raise DatasetError(f"{folder}: {len(classes)} classes; at most 256 are supported")
    paths, labels = [], []
    for label, cls in enumerate(classes):
        found = sorted(p for p in (folder / cls).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += found
        labels += [label] * len(found)
    if not paths:
        raise DatasetError(f"{folder}: no {'/'.join(IMAGE_SUFFIXES)} files in its class folders")
    from PIL import Image

    with Image.open(paths[0]) as first:
        gray = first.mode in ("1", "L", "I;16", "I", "F", "LA")
    images = []
    for p in paths:
        arr = _read_image(p, gray)
        if images and arr.shape != images[0].shape:
            raise DatasetError(
                f"{p}: size {arr.shape[2]} x {arr.shape[1]}, but {paths[0].name} is "
                f"{images[0].shape[2]} x {images[0].shape[1]} (one size per dataset)"
            )
        images.append(arr)
    return np.stack(images), np.array(labels, np.uint8), f"{folder} ({len(classes)} classes)"


def load_custom(name: str, split: str) -> tuple[np.ndarray, np.ndarray, str]:
    path = Path(name).expanduser()
    if path.suffix == ".npz" and path.is_file():
        return load_npz(path, split)
    if path.is_dir():
        return load_folder(path, split)
    raise DatasetError(
        f"dataset {name!r} not found: expected mnist, cifar10, an existing .npz file or an "
        "image folder"
    )
