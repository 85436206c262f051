"""The shipped networks on the real datasets (found through ACCELSIM_DATA; CI sets it)."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.datasets import load_dataset
from accelsim.datasets.fetch import fetch_mnist
from accelsim.functional.modelio import load_network
from accelsim.functional.network import predict
from tests.conftest import data_dir_or_fail

pytestmark = pytest.mark.integration

# Floors well below what the networks reach, so that a broken engine cannot pass by luck; the
# exact recorded accuracy (from the quantisation run) is checked as well.
FLOORS = {"lenet5": 0.98, "mlp7": 0.97, "alexnet": 0.70}


@pytest.mark.parametrize("name", ["lenet5", "mlp7", "alexnet"])
def test_zoo_network_reaches_its_recorded_accuracy_on_the_full_test_set(name: str) -> None:
    data_dir = data_dir_or_fail()
    net = load_network(name)
    test = load_dataset(net.dataset, "test", data_dir=data_dir)
    assert len(test) == 10_000
    accuracy = float(np.mean(predict(net, test.images) == test.labels))
    assert net.accuracy is not None
    assert net.accuracy.n_images == len(test)
    assert accuracy == net.accuracy.int8_accuracy
    assert accuracy >= FLOORS[name]
    assert abs(net.accuracy.int8_accuracy - net.accuracy.float_accuracy) < 0.01


def test_bundled_sample_is_the_official_test_head() -> None:
    official = load_dataset("mnist", "test", data_dir=data_dir_or_fail())
    sample = load_dataset("mnist", "sample")
    np.testing.assert_array_equal(sample.images, official.images[:2000])
    np.testing.assert_array_equal(sample.labels, official.labels[:2000])


def test_fetch_verifies_the_official_mnist_checksums(tmp_path) -> None:
    source = data_dir_or_fail() / "mnist"
    written = fetch_mnist(tmp_path, mirrors=(source.as_uri() + "/",))
    assert len(written) == 4
    fetched = load_dataset("mnist", "test", data_dir=tmp_path)
    assert fetched.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_cifar_training_split_has_the_shared_batches() -> None:
    train = load_dataset("cifar10", "train", data_dir=data_dir_or_fail())
    assert len(train) % 10_000 == 0
    assert train.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
