"""Long validations on the real networks (``pytest -m slow``; about 25 s on 2 cores)."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.analysis.stats import spearman
from accelsim.analysis.vulnerability import Mapping, Method, compute_nvf_variants
from accelsim.datasets import load_dataset
from accelsim.functional.modelio import load_network
from accelsim.functional.network import quantize_images
from tests.conftest import data_dir_or_fail

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_exact_value_nvf_reproduces_real_bit_flips_on_lenet5() -> None:
    """On 40 training images: exact deltas + value mapping predict the true per-bit outcome
    wherever misclassification is monotonic, so the two agree almost everywhere; linear NVF
    ranks the fully connected neurons like the truth."""
    net = load_network("lenet5")
    x = quantize_images(
        net, load_dataset("mnist", "train", data_dir=data_dir_or_fail(), n_images=40).images
    )
    (truth,) = compute_nvf_variants(net, x, method=Method.EXACT_BITS, variants=())
    (exact,) = compute_nvf_variants(net, x, method=Method.EXACT, variants=((Mapping.VALUE, False),))
    (linear,) = compute_nvf_variants(
        net, x, method=Method.LINEAR, variants=((Mapping.VALUE, True),)
    )
    assert truth.nvf.max() > 0
    assert np.mean(np.abs(exact.nvf - truth.nvf)) * 100 < 0.01
    fc = [lay for lay in truth.layers if lay.name.startswith("fc")]
    for lay in fc:
        pred = next(p for p in linear.layers if p.name == lay.name)
        assert spearman(pred.nvf, lay.nvf) > 0.5
