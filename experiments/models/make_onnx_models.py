"""Build the small float ONNX test models with PyTorch's exporter.

    python experiments/models/make_onnx_models.py [--out tests/data/models] [--epochs 2]

Needs ``torch`` (the ``train`` extra), ``onnx`` and ``onnxscript`` (``torch.onnx.export``'s
default exporter), and accelsim's dataset readers (``ACCELSIM_DATA``). Writes, under ``--out``:

- ``lenet5_bn_torch.onnx``: LeNet-5 with BatchNorm after each convolution (folded at import),
  ReLU, max pooling, ``torch.flatten`` (MNIST).
- ``resdw_torch.onnx``: a residual network with a depthwise convolution, ReLU6, a two-branch
  concatenation and global average pooling (CIFAR-10).
- ``resdw_torch_qdq.onnx``: ``resdw_torch`` quantised by onnxruntime's static quantiser to the
  QDQ format (int8 activations, asymmetric; int8 weights per channel, symmetric; 100 CIFAR-10
  training images for calibration).
- ``models_onnx.json``: how each was made (versions, epochs, float test accuracy on the first
  2,000 test images, computed by PyTorch).

Inputs are ``(p / 255 - mean) / std`` with the mean and std written to the JSON (LeNet-5: 0.1307 /
0.3081; CIFAR-10: the usual per-channel values), N x C x H x W float32, batch axis dynamic.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from accelsim import load_dataset

ROOT = Path(__file__).resolve().parents[2]
NORM = {
    "mnist": ([0.1307], [0.3081]),
    "cifar10": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
}


class LeNet5BN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.fc = nn.Sequential(
            nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class ResDW(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16), nn.ReLU6())
        self.pw = nn.Conv2d(16, 16, 1)
        self.a = nn.Sequential(nn.Conv2d(16, 8, 1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(16, 8, 3, 2, 1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.pw(self.dw(x))
        x = torch.cat([self.pool(self.a(x)), self.b(x)], 1)
        return self.head(x.mean((2, 3)))


MODELS = {"lenet5_bn_torch": (LeNet5BN, "mnist"), "resdw_torch": (ResDW, "cifar10")}


def normalized(images: np.ndarray, dataset: str) -> torch.Tensor:
    mean, std = (np.array(v, np.float32).reshape(1, -1, 1, 1) for v in NORM[dataset])
    return torch.from_numpy((images.astype(np.float32) / 255.0 - mean) / std)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "models")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    log = {"torch": torch.__version__, "models": {}}
    for name, (build, dataset) in MODELS.items():
        train = load_dataset(dataset, "train", n_images=10_000)
        test = load_dataset(dataset, "test", n_images=2_000)
        x, y = normalized(train.images, dataset), torch.from_numpy(train.labels.astype(np.int64))
        model = build()
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        for _ in range(args.epochs):
            model.train()
            for i in torch.randperm(len(x)).split(64):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[i]), y[i]).backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(normalized(test.images, dataset)).argmax(1).numpy()
        path = args.out / f"{name}.onnx"
        torch.onnx.export(
            model, (x[:1],), str(path), input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}}, external_data=False,
        )  # fmt: skip
        mean, std = NORM[dataset]
        log["models"][name] = {
            "dataset": dataset,
            "mean": mean,
            "std": std,
            "epochs": args.epochs,
            "train_images": 10_000,
            "float_accuracy_first_2000_test": round(float(np.mean(pred == test.labels)), 4),
            "bytes": path.stat().st_size,
        }
        print(name, log["models"][name], flush=True)
    log["models"]["resdw_torch_qdq"] = qdq(args.out, "resdw_torch")
    (args.out / "models_onnx.json").write_text(json.dumps(log, indent=2) + "\n")


def qdq(out: Path, name: str) -> dict:
    """``name`` quantised by onnxruntime to the QDQ format (needs ``onnxruntime``)."""
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, x: np.ndarray) -> None:
            self.items = iter([{"image": x[i : i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.items, None)

    dataset = MODELS[name][1]
    images = load_dataset(dataset, "train", n_images=100).images
    pre = out / f"{name}_pre.onnx"
    quant_pre_process(str(out / f"{name}.onnx"), str(pre))
    quantize_static(
        str(pre), str(out / f"{name}_qdq.onnx"), Reader(normalized(images, dataset).numpy()),
        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
    )  # fmt: skip
    pre.unlink()
    mean, std = NORM[dataset]
    return {"dataset": dataset, "mean": mean, "std": std, "from": f"{name}.onnx",
            "onnxruntime": onnxruntime.__version__, "calibration_images": 100}  # fmt: skip


if __name__ == "__main__":
    main()
