"""Frozen layer records of an int8 network (ReLU is fused into requantisation).

Arrays are read-only after construction. Shapes exclude the batch axis and are (C, H, W) for
feature maps and (F,) for vectors. Scales are float64 and only describe the quantisation; the
arithmetic uses ``multiplier``/``shift`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from accelsim.functional.kernels import gemm_weights

Shape = tuple[int, ...]


def _freeze(*arrays: np.ndarray) -> None:
    for arr in arrays:
        arr.setflags(write=False)


@dataclass(frozen=True, eq=False)
class _Weighted:
    """Fields shared by Conv2D and Dense.

    weight: int8 (O, C, KH, KW) or (O, F); bias, multiplier, shift: int32 (O,);
    weight_scale: float64 (O,); input_scale, output_scale: the activation scales.
    """

    name: str
    in_shape: Shape
    weight: npt.NDArray[np.int8]
    bias: npt.NDArray[np.int32]
    multiplier: npt.NDArray[np.int32]
    shift: npt.NDArray[np.int32]
    weight_scale: npt.NDArray[np.float64]
    input_scale: float
    output_scale: float
    relu: bool
    weight_matrix: npt.NDArray[np.float32] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight_matrix", gemm_weights(self.weight))
        _freeze(self.weight, self.bias, self.multiplier, self.shift, self.weight_scale)
        _freeze(self.weight_matrix)

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def n_parameters(self) -> int:
        return int(self.weight.size + self.bias.size)

    @property
    def out_size(self) -> int:
        return int(np.prod(self.out_shape))

    def channel_of(self, flat_index: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Output channel of flat (C-H-W) output indices."""
        return np.asarray(flat_index, np.int64) // (self.out_size // self.out_channels)


@dataclass(frozen=True, eq=False)
class Conv2D(_Weighted):
    stride: int = 1
    padding: int = 0

    @property
    def out_shape(self) -> Shape:
        _, h, w = self.in_shape
        kh, kw = self.weight.shape[2:]
        oh = (h + 2 * self.padding - kh) // self.stride + 1
        ow = (w + 2 * self.padding - kw) // self.stride + 1
        return (self.out_channels, oh, ow)

    @property
    def macs(self) -> int:
        return int(np.prod(self.out_shape) * np.prod(self.weight.shape[1:]))


@dataclass(frozen=True, eq=False)
class Dense(_Weighted):
    @property
    def out_shape(self) -> Shape:
        return (self.out_channels,)

    @property
    def macs(self) -> int:
        return int(self.weight.size)


@dataclass(frozen=True, eq=False)
class MaxPool2D:
    name: str
    in_shape: Shape
    size: int
    stride: int
    n_parameters = 0
    macs = 0

    @property
    def out_shape(self) -> Shape:
        c, h, w = self.in_shape
        return (c, (h - self.size) // self.stride + 1, (w - self.size) // self.stride + 1)

    def windows(self) -> npt.NDArray[np.int64]:
        """(C*OH*OW, size * size) int64: the flat C-H-W input indices of each output's window,
        outputs in flat C-H-W order, window elements row by row."""
        c, h, w = self.in_shape
        _, oh, ow = self.out_shape
        s, z = self.stride, self.size
        ch, oy, ox, i, j = np.meshgrid(
            np.arange(c), np.arange(oh), np.arange(ow), np.arange(z), np.arange(z), indexing="ij"
        )
        win = ((ch * h + oy * s + i) * w + ox * s + j).reshape(c * oh * ow, z * z)
        return np.ascontiguousarray(win, np.int64)


@dataclass(frozen=True, eq=False)
class Flatten:
    name: str
    in_shape: Shape
    n_parameters = 0
    macs = 0

    @property
    def out_shape(self) -> Shape:
        return (int(np.prod(self.in_shape)),)


Layer = Conv2D | Dense | MaxPool2D | Flatten
