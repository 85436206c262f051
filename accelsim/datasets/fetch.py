"""``accelsim data fetch``: download the official dataset archives and verify them.

MNIST: the four IDX files; the SHA-256 of each *uncompressed* file must equal the official one
(independent of the mirror's gzip container). CIFAR-10: the official binary archive, checked
against its published MD5 (the only checksum the dataset's authors publish), from which the
``.bin`` batches are extracted. Files are written to a temporary name and renamed only once
verified, so a failed or interrupted fetch leaves nothing half-written.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from accelsim import files
from accelsim.datasets.loaders import resolve_data_dir
from accelsim.errors import DatasetError, ParameterError

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MNIST_SHA256 = {  # of the uncompressed official files
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
CIFAR10_URLS = ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",)
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"

Opener = Callable[[str], bytes]


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def _first_working(urls: Sequence[str], opener: Opener) -> bytes:
    errors = []
    for url in urls:
        try:
            return opener(url)
        except OSError as exc:
            errors.append(f"{url}: {exc}")
    raise DatasetError("download failed from every mirror: " + "; ".join(errors))


def _write_atomic(path: Path, data: bytes) -> None:
    files.write_bytes(path, data)


def fetch_mnist(
    dest: Path, *, mirrors: Sequence[str] = MNIST_MIRRORS, opener: Opener = _download
) -> list[Path]:
    """Download the four MNIST files into ``dest/mnist`` (gzipped), verified by SHA-256."""
    verified: dict[Path, bytes] = {}
    for stem, sha in MNIST_SHA256.items():
        blob = _first_working([m + stem + ".gz" for m in mirrors], opener)
        try:
            content = gzip.decompress(blob)
        except (OSError, EOFError) as exc:
            raise DatasetError(f"{stem}.gz: not a gzip file ({exc})") from exc
        got = hashlib.sha256(content).hexdigest()
        if got != sha:
            raise DatasetError(
                f"{stem}: SHA-256 {got} differs from the official {sha}; nothing written"
            )
        verified[dest / "mnist" / f"{stem}.gz"] = blob
    for path, blob in verified.items():
        _write_atomic(path, blob)
    return list(verified)


def fetch_cifar10(
    dest: Path, *, urls: Sequence[str] = CIFAR10_URLS, opener: Opener = _download
) -> list[Path]:
    """Download the CIFAR-10 binary archive, check its MD5, extract the batches into
    ``dest/cifar-10-batches-bin``."""
    blob = _first_working(urls, opener)
    got = hashlib.md5(blob).hexdigest()
    if got != CIFAR10_MD5:
        raise DatasetError(
            f"cifar-10-binary.tar.gz: MD5 {got} differs from the official {CIFAR10_MD5}"
        )
    written = []
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if member.isfile() and (name.endswith(".bin") or name == "batches.meta.txt"):
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                path = dest / "cifar-10-batches-bin" / name
                _write_atomic(path, data)
                written.append(path)
    return written


FETCHERS = {"mnist": fetch_mnist, "cifar10": fetch_cifar10}


def fetch_dataset(name: str, data_dir: Path | str | None = None) -> list[Path]:
    """Download, verify and unpack ``name`` (mnist, cifar10) into ``data_dir`` (default: the
    data folder ``resolve_data_dir`` finds); the files written."""
    if name not in FETCHERS:
        raise ParameterError(
            "dataset", f"{{parameter}}: expected one of {', '.join(FETCHERS)}, got {name!r}"
        )
    return FETCHERS[name](resolve_data_dir(data_dir))
