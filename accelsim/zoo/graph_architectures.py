"""Float architectures of the zoo's graph networks: ResNet-20 and a MobileNetV2-style network
for CIFAR-10.

Each is a list of float nodes in execution order. Weighted nodes (``conv``, ``dwconv``, ``fc``)
carry their geometry and whether a BatchNorm follows in training (folded into the weights and
bias when the float weights are written); ``add`` sums two tensors; ``mean`` is global average
pooling. ``activation`` is ``none``, ``relu`` or ``relu6``. The training script
(``experiments/train/train_graphs.py``) builds its PyTorch modules from these lists and the
quantiser (``experiments/train/quantize_graphs.py``) turns the trained weights into int8 graphs
with the same node and tensor names.
"""

from __future__ import annotations

from typing import Any

CIFAR_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR_STD = [0.2470, 0.2435, 0.2616]


def _conv(name, src, c_in, c_out, k, stride, act, *, bn=True, depthwise=False) -> dict[str, Any]:
    return {
        "name": name,
        "op": "dwconv" if depthwise else "conv",
        "inputs": [src],
        "in_channels": c_in,
        "out_channels": c_out,
        "kernel": k,
        "stride": stride,
        "padding": k // 2,
        "activation": act,
        "bn": bn,
    }


def resnet20() -> dict[str, Any]:
    """ResNet-20 (He et al. 2016, CIFAR variant): 3 stages x 3 basic blocks of 16 / 32 / 64
    channels; the first block of stages 2 and 3 downsamples with stride 2 and a 1x1 projection
    shortcut (option B)."""
    nodes = [_conv("stem", "input", 3, 16, 3, 1, "relu")]
    src, c_in = "stem", 16
    for stage, c_out in enumerate((16, 32, 64)):
        for block in range(3):
            stride = 2 if stage > 0 and block == 0 else 1
            p = f"s{stage + 1}b{block + 1}"
            nodes.append(_conv(f"{p}_conv1", src, c_in, c_out, 3, stride, "relu"))
            nodes.append(_conv(f"{p}_conv2", f"{p}_conv1", c_out, c_out, 3, 1, "none"))
            skip = src
            if stride != 1 or c_in != c_out:
                nodes.append(_conv(f"{p}_proj", src, c_in, c_out, 1, stride, "none"))
                skip = f"{p}_proj"
            nodes.append(
                {
                    "name": f"{p}_add",
                    "op": "add",
                    "inputs": [f"{p}_conv2", skip],
                    "activation": "relu",
                }
            )
            src, c_in = f"{p}_add", c_out
    nodes.append({"name": "gap", "op": "mean", "inputs": [src]})
    nodes.append(
        {
            "name": "fc",
            "op": "fc",
            "inputs": ["gap"],
            "in_features": 64,
            "out_features": 10,
            "activation": "none",
            "bn": False,
        }
    )
    return {
        "dataset": "cifar10",
        "input_shape": [3, 32, 32],
        "mean": CIFAR_MEAN,
        "std": CIFAR_STD,
        "nodes": nodes,
    }


# expansion, output channels, blocks, first stride: a MobileNetV2 (Sandler et al. 2018) sized
# for 32x32 inputs and a 2-core CPU (expansion 4, 16 -> 64 channels, 32x32 -> 4x4)
MOBILENET_STAGES = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 3, 2), (4, 64, 2, 2))


def mobilenetv2() -> dict[str, Any]:
    """A MobileNetV2-style network for 32x32 inputs: a 3x3 stem (RELU6), inverted residual blocks
    (1x1 expansion RELU6, 3x3 depthwise RELU6, 1x1 linear projection, ADD when the stride is 1
    and the width is kept), a 1x1 head of 192 channels (RELU6), global average pooling, FC."""
    nodes = [_conv("stem", "input", 3, 24, 3, 1, "relu6")]
    src, c_in = "stem", 24
    for stage, (t, c_out, n, s) in enumerate(MOBILENET_STAGES):
        for block in range(n):
            stride = s if block == 0 else 1
            p = f"s{stage + 1}b{block + 1}"
            hidden = c_in * t
            x = src
            if t != 1:
                nodes.append(_conv(f"{p}_expand", x, c_in, hidden, 1, 1, "relu6"))
                x = f"{p}_expand"
            nodes.append(_conv(f"{p}_dw", x, hidden, hidden, 3, stride, "relu6", depthwise=True))
            nodes.append(_conv(f"{p}_project", f"{p}_dw", hidden, c_out, 1, 1, "none"))
            out = f"{p}_project"
            if stride == 1 and c_in == c_out:
                nodes.append(
                    {"name": f"{p}_add", "op": "add", "inputs": [out, src], "activation": "none"}
                )
                out = f"{p}_add"
            src, c_in = out, c_out
    nodes.append(_conv("head", src, c_in, 192, 1, 1, "relu6"))
    nodes.append({"name": "gap", "op": "mean", "inputs": ["head"]})
    nodes.append(
        {
            "name": "fc",
            "op": "fc",
            "inputs": ["gap"],
            "in_features": 192,
            "out_features": 10,
            "activation": "none",
            "bn": False,
        }
    )
    return {
        "dataset": "cifar10",
        "input_shape": [3, 32, 32],
        "mean": CIFAR_MEAN,
        "std": CIFAR_STD,
        "nodes": nodes,
    }


GRAPH_ARCHITECTURES = {"resnet20": resnet20(), "mobilenetv2": mobilenetv2()}
