"""Layer descriptions of the paper's three networks, in the model-description schema.

These are the same dictionaries a model YAML holds under ``network.layers`` (see
``accelsim.functional.modelio``); the training scripts in ``experiments/`` build their PyTorch
modules from them, so the trained float weights always fit the int8 network.
"""

from __future__ import annotations

from typing import Any

MNIST_NORM = {"mean": [0.0], "std": [1.0]}
CIFAR10_NORM = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616]}


def _conv(name: str, cin: int, cout: int, k: int, padding: int = 0) -> dict[str, Any]:
    return {
        "type": "conv2d",
        "name": name,
        "in_channels": cin,
        "out_channels": cout,
        "kernel": k,
        "stride": 1,
        "padding": padding,
        "relu": True,
    }


def _dense(name: str, fin: int, fout: int, relu: bool = True) -> dict[str, Any]:
    return {"type": "dense", "name": name, "in_features": fin, "out_features": fout, "relu": relu}


def _pool(name: str) -> dict[str, Any]:
    return {"type": "maxpool2d", "name": name, "size": 2, "stride": 2}


def _flatten() -> dict[str, Any]:
    return {"type": "flatten", "name": "flatten"}


ARCHITECTURES: dict[str, dict[str, Any]] = {
    "lenet5": {
        "dataset": "mnist",
        "input_shape": [1, 28, 28],
        **MNIST_NORM,
        "layers": [
            _conv("conv1", 1, 6, 5),
            _pool("pool1"),
            _conv("conv2", 6, 16, 5),
            _pool("pool2"),
            _flatten(),
            _dense("fc1", 256, 120),
            _dense("fc2", 120, 84),
            _dense("fc3", 84, 10, relu=False),
        ],
    },
    "mlp7": {
        "dataset": "mnist",
        "input_shape": [1, 28, 28],
        **MNIST_NORM,
        "layers": [
            _flatten(),
            _dense("fc1", 784, 1024),
            _dense("fc2", 1024, 512),
            _dense("fc3", 512, 512),
            _dense("fc4", 512, 256),
            _dense("fc5", 256, 256),
            _dense("fc6", 256, 256),
            _dense("fc7", 256, 10, relu=False),
        ],
    },
    "alexnet": {
        "dataset": "cifar10",
        "input_shape": [3, 32, 32],
        **CIFAR10_NORM,
        "layers": [
            _conv("conv1", 3, 32, 3, 1),
            _pool("pool1"),
            _conv("conv2", 32, 96, 3, 1),
            _pool("pool2"),
            _conv("conv3", 96, 256, 3, 1),
            _conv("conv4", 256, 256, 3, 1),
            _conv("conv5", 256, 192, 3, 1),
            _pool("pool3"),
            _flatten(),
            _dense("fc1", 3072, 512),
            _dense("fc2", 512, 256),
            _dense("fc3", 256, 10, relu=False),
        ],
    },
}
