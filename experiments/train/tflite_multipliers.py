"""Re-derive the shipped networks' multipliers from float32 scales (TFLite's rule) and report
what moved.

    python experiments/train/tflite_multipliers.py [--write]

A ``.tflite`` holds scales as float32 and TFLite derives each channel's multiplier from them;
the zoo's multipliers came from float64 scales. For every zoo network this prints how many
channels' multipliers change, and on the full test split how many images' logits and
predicted classes change and the int8 accuracy before and after. ``--write`` rewrites
``accelsim/zoo/<name>.yaml`` + ``.npz`` with the new multipliers and int8 accuracy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from accelsim import (
    ZOO_DIR,
    ZOO_NAMES,
    classify,
    forward,
    load_dataset,
    load_network,
    quantize_images,
    save_network,
    with_tflite_multipliers,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the zoo files")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    for name in ZOO_NAMES:
        old = load_network(ZOO_DIR / f"{name}.yaml")
        new = with_tflite_multipliers(old)
        changed = sum(
            int(np.sum((a.multiplier != b.multiplier) | (a.shift != b.shift)))
            for a, b in zip(old.layers, new.layers, strict=True)
            if hasattr(a, "multiplier")
        )
        channels = sum(a.multiplier.size for a in old.layers if hasattr(a, "multiplier"))
        test = load_dataset(old.dataset, "test", data_dir=args.data_dir)
        lut_changed = int(np.sum(old.input_lut != new.input_lut))
        x_old, x_new = quantize_images(old, test.images), quantize_images(new, test.images)
        lo, ln = forward(old, x_old), forward(new, x_new)
        po, pn = classify(lo), classify(ln)
        acc_old = float(np.mean(po == test.labels))
        acc_new = float(np.mean(pn == test.labels))
        print(
            json.dumps(
                {
                    "network": name,
                    "channels": channels,
                    "multipliers_changed": changed,
                    "input_lut_entries_changed": lut_changed,
                    "images": len(test),
                    "logits_changed": int(np.sum(np.any(lo != ln, axis=1))),
                    "max_logit_step": int(np.max(np.abs(lo.astype(int) - ln.astype(int)))),
                    "predictions_changed": int(np.sum(po != pn)),
                    "int8_accuracy_before": acc_old,
                    "int8_accuracy_after": acc_new,
                }
            ),
            flush=True,
        )
        if args.write:
            acc = old.accuracy
            if acc is not None:
                acc = dataclasses.replace(acc, int8_accuracy=acc_new)
            save_network(dataclasses.replace(new, accuracy=acc), ZOO_DIR / f"{name}.yaml")


if __name__ == "__main__":
    main()
