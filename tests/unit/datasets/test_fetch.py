"""``data fetch``: checksums are verified before anything is written (no network: a fake opener)."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from accelsim.datasets import fetch
from accelsim.errors import DatasetError


def test_mnist_checksum_mismatch_writes_nothing(tmp_path: Path) -> None:
    calls = []

    def opener(url: str) -> bytes:
        calls.append(url)
        return gzip.compress(b"not the official bytes")

    with pytest.raises(
        DatasetError,
        match=r"train-images-idx3-ubyte: SHA-256 [0-9a-f]{64} differs from the official",
    ):
        fetch.fetch_mnist(tmp_path, opener=opener)
    assert not any(tmp_path.rglob("*")), "a failed fetch must leave nothing behind"
    assert calls == [fetch.MNIST_MIRRORS[0] + "train-images-idx3-ubyte.gz"]


def test_mnist_falls_back_to_the_next_mirror_and_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contents = {stem: stem.encode() * 3 for stem in fetch.MNIST_SHA256}
    monkeypatch.setattr(
        fetch, "MNIST_SHA256", {s: hashlib.sha256(c).hexdigest() for s, c in contents.items()}
    )

    def opener(url: str) -> bytes:
        if url.startswith("https://down/"):
            raise OSError("connection refused")
        return gzip.compress(contents[url.rsplit("/", 1)[1].removesuffix(".gz")])

    written = fetch.fetch_mnist(tmp_path, mirrors=("https://down/", "https://up/"), opener=opener)
    assert len(written) == 4
    for stem, content in contents.items():
        assert gzip.decompress((tmp_path / "mnist" / f"{stem}.gz").read_bytes()) == content


def test_every_mirror_failing_is_reported(tmp_path: Path) -> None:
    def opener(url: str) -> bytes:
        raise OSError("no network")

    with pytest.raises(DatasetError, match=r"download failed from every mirror: .*no network"):
        fetch.fetch_mnist(tmp_path, opener=opener)


def test_cifar_md5_verified_then_extracted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (
            ("cifar-10-batches-bin/test_batch.bin", b"\x01" * 3073),
            ("cifar-10-batches-bin/readme.html", b"<html>"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    blob = buf.getvalue()
    with pytest.raises(DatasetError, match=r"MD5 .* differs from the official"):
        fetch.fetch_cifar10(tmp_path, opener=lambda url: blob)
    monkeypatch.setattr(fetch, "CIFAR10_MD5", hashlib.md5(blob).hexdigest())
    written = fetch.fetch_cifar10(tmp_path, opener=lambda url: blob)
    assert written == [tmp_path / "cifar-10-batches-bin" / "test_batch.bin"]
