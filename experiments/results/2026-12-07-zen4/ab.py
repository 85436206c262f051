"""The A/B runner used for ab_*.txt (run from a checkout with PYTHONPATH pointing at it):

    python ab.py NETWORK FAULTS IMAGES WORKERS

GraphCampaignInputs on the first IMAGES CIFAR-10 test images, FAULTS faults evenly spaced through
the network's Leveugle sample (seed 0), golden state timed apart, then evaluate_faults with
WORKERS processes; prints pairs/s and a hash of the rows (images changed, images correct).
"""

import hashlib
import sys
import time

import numpy as np

from accelsim import (
    GraphCampaignInputs,
    evaluate_faults,
    golden_state,
    load_dataset,
    load_graph,
    quantize_graph_images,
    sample_graph_faults,
)

net, nf, ni, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
g = load_graph(net)
x = quantize_graph_images(g, load_dataset("cifar10", "test", n_images=ni).images)
sample = sample_graph_faults(g, None, seed=0)
faults = sample.take(np.linspace(0, len(sample) - 1, nf).astype(np.int64))
inputs = GraphCampaignInputs(g, x, np.zeros(len(x), np.int64))
t0 = time.perf_counter()
golden_state(inputs, rebuild=True)
t1 = time.perf_counter()
rows = evaluate_faults(inputs, faults, workers=w)
t2 = time.perf_counter()
h = hashlib.sha1(np.stack([rows.n_changed, rows.n_correct]).tobytes()).hexdigest()[:10]
rate = nf * ni / (t2 - t1)
print(f"{net} {nf}x{ni} w{w}: golden {t1 - t0:.1f}s campaign {t2 - t1:.1f}s {rate:,.0f} pairs/s "
      f"rows {h}", flush=True)  # fmt: skip
