"""Build the small test models that the default suite imports, with the official converters.

    python experiments/models/make_test_models.py [--out tests/data/models] [--epochs 2]

Needs its own environment: ``tensorflow-cpu`` (2.21.0 was used; Keras 3) for the ``.tflite``
files, ``torch`` for the ONNX files, and accelsim on the path for the dataset readers
(``ACCELSIM_DATA`` names the MNIST / CIFAR-10 folder). Writes, under ``--out``:

- ``lenet5_keras.tflite``: a Keras LeNet-5 (MNIST), int8 in and int8 logits out.
- ``resdw_keras.tflite``: a residual network with depthwise convolutions, RELU6 and global
  average pooling (CIFAR-10), int8 in and out.
- ``concat_keras.tflite``: two branches joined by a concatenation, an average pool (MNIST);
  float32 in and out (the converter adds QUANTIZE / DEQUANTIZE at the edges) and a SOFTMAX.
- ``concat_float.tflite`` / ``concat_int16.tflite``: the concatenation network converted
  without quantisation and with 16-bit activations (16x8): inputs the importer must refuse.
- ``models.json``: how each was made (versions, epochs, float test accuracy on the first 2,000
  test images).

Each network is trained briefly (``--epochs`` over the first 10,000 training images, seed 0):
the tests compare int8 logits with TFLite Micro's, which needs a real converter's output, not a
good classifier. The int8 conversion calibrates on 200 training images.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from tensorflow import keras

from accelsim import load_dataset

ROOT = Path(__file__).resolve().parents[2]


def nhwc01(images: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) -> float32 (N, H, W, C) in [0, 1]: the models' float input."""
    return images.transpose(0, 2, 3, 1).astype(np.float32) / 255.0


def lenet5() -> keras.Model:
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(6, 5, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(16, 5, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(120, activation="relu"),
            layers.Dense(84, activation="relu"),
            layers.Dense(10),
        ]
    )


def resdw() -> keras.Model:
    layers = keras.layers
    x = inp = keras.Input((32, 32, 3))
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu6")(x)
    for _ in range(2):
        y = layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
        y = layers.Conv2D(16, 1)(y)
        x = layers.Add()([x, y])
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2)(x)
    x = layers.ReLU(6.0)(x)
    x = layers.Conv2D(24, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(10)(x))


def concat() -> keras.Model:
    layers = keras.layers
    x = inp = keras.Input((28, 28, 1))
    x = layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    a = layers.Conv2D(8, 1, activation="relu")(x)
    b = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = layers.Concatenate()([a, b])
    x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    return keras.Model(inp, layers.Dense(10, activation="softmax")(x))


MODELS = {
    "lenet5_keras": (lenet5, "mnist", True),
    "resdw_keras": (resdw, "cifar10", True),
    "concat_keras": (concat, "mnist", False),
}


def convert(model: keras.Model, calib: np.ndarray, int8_io: bool) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

    def representative():
        for i in range(len(calib)):
            yield [calib[i : i + 1]]

    converter.representative_dataset = representative
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def refused_variants(out: Path) -> None:
    """The concatenation network (untrained: only the file's types matter) as a float model
    and with int16 activations."""
    model = concat()
    float_blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    (out / "concat_float.tflite").write_bytes(float_blob)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
    ]
    calib = np.random.default_rng(0).random((20, 28, 28, 1), np.float32)
    converter.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(20))
    converter.inference_input_type = tf.int16
    converter.inference_output_type = tf.int16
    (out / "concat_int16.tflite").write_bytes(converter.convert())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "models")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--refused-only", action="store_true",
                        help="write only the float / int16 variants")  # fmt: skip
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    refused_variants(args.out)
    if args.refused_only:
        return
    log = {"tensorflow": tf.__version__, "keras": keras.__version__, "models": {}}
    for name, (build, dataset, int8_io) in MODELS.items():
        train = load_dataset(dataset, "train", n_images=10_000)
        test = load_dataset(dataset, "test", n_images=2_000)
        model = build()
        model.compile(
            optimizer="adam",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=name != "concat_keras"),
            metrics=["accuracy"],
        )
        model.fit(nhwc01(train.images), train.labels, epochs=args.epochs, batch_size=64, verbose=0)
        _, acc = model.evaluate(nhwc01(test.images), test.labels, verbose=0)
        blob = convert(model, nhwc01(train.images[:200]), int8_io)
        (args.out / f"{name}.tflite").write_bytes(blob)
        log["models"][name] = {
            "dataset": dataset,
            "epochs": args.epochs,
            "train_images": 10_000,
            "int8_io": int8_io,
            "float_accuracy_first_2000_test": round(float(acc), 4),
            "bytes": len(blob),
        }
        print(name, log["models"][name], flush=True)
    (args.out / "models.json").write_text(json.dumps(log, indent=2) + "\n")


if __name__ == "__main__":
    main()
