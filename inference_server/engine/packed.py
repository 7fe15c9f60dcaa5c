"""The ``packed`` backend: eager modules whose weights are reordered once for oneDNN.

A plain ``nn.Linear``/``nn.Conv2d`` hands oneDNN a weight in PyTorch's layout, which oneDNN
reorders into its blocked (AMX/AVX-512) layout on every call. Reordering once and calling the
packed kernels (``torch.ops.mkldnn._linear_pointwise``/``_convolution_pointwise``, the ops
inductor emits when it freezes a graph with ``cpp.weight_prepack``) gives compile's main gain
without compiling, with identical outputs and start-up in seconds instead of compile's minutes on
every restart (inductor cannot cache graphs holding packed weights); figures in BENCHMARKS.md,
"Current default" (the weight-traffic row) and "Default backend: packed". What IPEX's
``optimize`` does, in upstream PyTorch.

Each weight is packed on the module's first call, for the shape it actually sees (the engine's
warm-up); other shapes still run correctly on the packed weight. The original weight is then
released, so memory does not grow.
"""

from __future__ import annotations

import torch
from torch import nn

_linear = torch.ops.mkldnn._linear_pointwise
_linear_binary = torch.ops.mkldnn._linear_pointwise.binary
_conv = torch.ops.mkldnn._convolution_pointwise
_conv_binary = torch.ops.mkldnn._convolution_pointwise.binary


class PackedLinear(nn.Module):
    """``nn.Linear`` on a oneDNN-packed weight; ``attr``/``binary`` fuse an activation or an
    elementwise op with a second tensor into the GEMM's epilogue (see engine.fused)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.weight: torch.Tensor | None = weight.detach()
        self.bias = bias
        self.packed: torch.Tensor | None = None

    @classmethod
    def of(cls, linear: nn.Linear) -> PackedLinear:
        return cls(linear.weight, linear.bias)

    def packed_weight(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is None:
            rows = x.numel() // self.in_features
            self.packed = torch.ops.mkldnn._reorder_linear_weight(self.weight, rows)
            self.weight = None
        return self.packed

    def forward(self, x: torch.Tensor, attr: str = "none") -> torch.Tensor:
        """``attr`` is a oneDNN unary post-op: "none", "gelu" (erf), "silu", "relu", ..."""
        return _linear(x, self.packed_weight(x), self.bias, attr, [], "none")

    def binary(self, x: torch.Tensor, other: torch.Tensor, op: str) -> torch.Tensor:
        """``linear(x) <op> other`` in one pass; ``op`` is "add", "mul", "sub" or "div"."""
        return _linear_binary(x, other, self.packed_weight(x), self.bias, op)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class PackedConv2d(nn.Module):
    """``nn.Conv2d`` (zero padding, numeric padding) on a oneDNN-packed weight."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight: torch.Tensor | None = conv.weight.detach()
        self.bias = conv.bias
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.packed: torch.Tensor | None = None

    def packed_weight(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is None:
            self.packed = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight, *self.geometry, list(x.shape)
            )
            self.weight = None
        return self.packed

    @property
    def geometry(self) -> tuple[list[int], list[int], list[int], int]:
        return self.padding, self.stride, self.dilation, self.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _conv(x, self.packed_weight(x), self.bias, *self.geometry, "none", [], "")

    def add(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """``conv(x) + other`` in one pass (a residual connection)."""
        weight, no_unary_op = self.packed_weight(x), (None, [], None)
        return _conv_binary(x, other, weight, self.bias, *self.geometry, "add", None, *no_unary_op)


def packable(module: nn.Module) -> bool:
    if type(module) is nn.Linear:
        return True
    return (
        type(module) is nn.Conv2d
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


def pack_weights(model: nn.Module) -> int:
    """Replace every plain Linear/Conv2d in ``model`` by its packed twin; returns how many.
    Subclasses (LoRA layers, quantized modules) are left alone: their forward differs."""
    targets = [(name, module) for name, module in model.named_modules() if packable(module)]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        packed = PackedLinear.of(module) if isinstance(module, nn.Linear) else PackedConv2d(module)
        setattr(parent, child, packed)
    return len(targets)
