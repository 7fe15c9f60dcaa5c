"""Fused blocks for the ``packed`` backend: elementwise work folded into oneDNN GEMM epilogues.

With packed weights, GEMMs and convolutions run near the bf16 peak and a fifth of an image's
time is elementwise passes over activations that have just left a GEMM: GEGLU's GELU and
multiply, the residual adds after every attention, feed-forward and ResNet block, a division
by a ``rescale_output_factor``/``output_scale_factor`` of 1.0 after each of them, and a
``.contiguous()`` that turns each transformer's channels-last output into NCHW (which the next
convolution converts back). oneDNN applies an activation or a binary op with a second tensor to
the GEMM's output tile while it is still in cache (``_linear_pointwise(attr=...)``,
``_linear_pointwise.binary``, ``_convolution_pointwise.binary``), which is what IPEX's
``optimize`` and inductor's freezing passes do; this module does it for diffusers' SDXL blocks
without either.

Only blocks whose configuration matches the computation written here are replaced (SDXL's
UNet and VAE); anything else — LoRA-patched linears, custom attention processors, ada-norm
blocks, masks at call time — keeps diffusers' own module, or is refused with an error rather
than computed differently. Inference only: dropout is skipped.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from diffusers.models.activations import GEGLU
from diffusers.models.attention import BasicTransformerBlock, FeedForward
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import (
    Transformer2DModel,
    Transformer2DModelOutput,
)
from torch import nn

from inference_server.engine.packed import PackedConv2d, PackedLinear, packable


class FusedAttention(nn.Module):
    """diffusers' ``Attention`` with ``AttnProcessor2_0`` and the caller's residual add fused
    into the output projection.

    Cross-attention keys and values depend only on the text embeddings, which the pipeline
    passes as the same tensor at every denoising step: they are projected once per call and
    reused (exactly the same numbers). At batch 1 those 77-row projections are bound by
    reading their weights (~0.7 GB per step), ~2-3 % of an image when done at every step."""

    def __init__(self, attention: Attention) -> None:
        super().__init__()
        self.heads = attention.heads
        self.to_q, self.to_k, self.to_v, self.to_out = (
            PackedLinear.of(linear)
            for linear in (attention.to_q, attention.to_k, attention.to_v, attention.to_out[0])
        )
        self._context_key_value = _ContextCache()

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None, residual: torch.Tensor
    ) -> torch.Tensor:
        batch = x.shape[0]
        query = self._split_heads(self.to_q(x), batch)
        if context is None:  # self-attention
            key, value = (self._split_heads(p(x), batch) for p in (self.to_k, self.to_v))
        else:
            key, value = self._context_key_value.get(context, self._project_context)
        attended = F.scaled_dot_product_attention(query, key, value)
        attended = attended.transpose(1, 2).reshape(batch, -1, query.shape[1] * query.shape[3])
        return self.to_out.binary(attended, residual, "add")

    def _project_context(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = context.shape[0]
        return self._split_heads(self.to_k(context), batch), self._split_heads(
            self.to_v(context), batch
        )

    def _split_heads(self, projection: torch.Tensor, batch: int) -> torch.Tensor:
        head_dim = projection.shape[-1] // self.heads
        return projection.view(batch, -1, self.heads, head_dim).transpose(1, 2)


class _ContextCache:
    """What was computed from one context tensor, kept while that tensor is alive and unchanged.

    Holds only a weak reference to the tensor: when the pipeline call that made it returns,
    the tensor is freed and the cached result with it (so memory does not grow with the last
    batch size), and a new tensor at a recycled address can never match. Tensors created
    under ``torch.inference_mode`` (the server's) cannot be modified in place after it exits;
    for others the version counter catches an in-place change."""

    def __init__(self) -> None:
        self._source: weakref.ReferenceType[torch.Tensor] | None = None
        self._version: int | None = None
        self._value = None

    def get(self, context: torch.Tensor, compute):
        version = None if context.is_inference() else context._version
        if self._source is None or self._source() is not context or self._version != version:
            self._value = compute(context)
            self._source = weakref.ref(context, self._forget)
            self._version = version
        return self._value

    def _forget(self, dead: weakref.ReferenceType) -> None:
        if self._source is dead:  # not a context replaced earlier, dying after the current one
            self._source, self._value = None, None


class FusedFeedForward(nn.Module):
    """``FeedForward`` with GEGLU: ``value * gelu(gate)`` computed as two GEMMs, the gate's with
    a GELU epilogue and the value's with a multiply epilogue; the residual add fused into the
    output projection."""

    def __init__(self, feed_forward: FeedForward) -> None:
        super().__init__()
        projection = feed_forward.net[0].proj
        value_weight, gate_weight = projection.weight.detach().chunk(2, dim=0)
        value_bias, gate_bias = (
            (None, None) if projection.bias is None else projection.bias.detach().chunk(2)
        )
        self.value = PackedLinear(value_weight.contiguous(), _contiguous(value_bias))
        self.gate = PackedLinear(gate_weight.contiguous(), _contiguous(gate_bias))
        self.out = PackedLinear.of(feed_forward.net[2])

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        gated = self.value.binary(x, self.gate(x, "gelu"), "mul")
        return self.out.binary(gated, residual, "add")


class FusedTransformerBlock(nn.Module):
    """SDXL's ``BasicTransformerBlock``: self-attention, cross-attention, GEGLU feed-forward,
    each pre-LayerNorm with a residual add."""

    def __init__(self, block: BasicTransformerBlock) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = block.norm1, block.norm2, block.norm3
        self.attn1, self.attn2 = FusedAttention(block.attn1), FusedAttention(block.attn2)
        self.ff = FusedFeedForward(block.ff)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        timestep: torch.Tensor | None = None,
        cross_attention_kwargs: dict | None = None,
        class_labels: torch.Tensor | None = None,
        added_cond_kwargs: dict | None = None,
    ) -> torch.Tensor:
        _refuse_unsupported(attention_mask, encoder_attention_mask, cross_attention_kwargs)
        h = hidden_states.contiguous()
        h = self.attn1(self.norm1(h), None, residual=h)
        h = self.attn2(self.norm2(h), encoder_hidden_states, residual=h)
        return self.ff(self.norm3(h), residual=h)


class FusedTransformer2D(nn.Module):
    """``Transformer2DModel`` (continuous input, linear projections) that keeps activations in
    the channels-last layout the convolutions use: the residual is a view, the output
    projection adds it in its epilogue, and no ``.contiguous()`` copy to NCHW is made."""

    def __init__(self, model: Transformer2DModel) -> None:
        super().__init__()
        self.norm = model.norm
        self.proj_in = PackedLinear.of(model.proj_in)
        self.proj_out = PackedLinear.of(model.proj_out)
        self.transformer_blocks = nn.ModuleList(
            FusedTransformerBlock(block) for block in model.transformer_blocks
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        timestep: torch.Tensor | None = None,
        added_cond_kwargs: dict | None = None,
        class_labels: torch.Tensor | None = None,
        cross_attention_kwargs: dict | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        _refuse_unsupported(attention_mask, encoder_attention_mask, cross_attention_kwargs)
        batch, channels, height, width = hidden_states.shape
        as_tokens = (batch, height * width, channels)
        residual = hidden_states.permute(0, 2, 3, 1).reshape(as_tokens)  # a view if channels-last
        h = self.proj_in(self.norm(hidden_states).permute(0, 2, 3, 1).reshape(as_tokens))
        for block in self.transformer_blocks:
            h = block(h, encoder_hidden_states=encoder_hidden_states)
        output = self.proj_out.binary(h, residual, "add")
        output = output.view(batch, height, width, channels).permute(0, 3, 1, 2)
        return Transformer2DModelOutput(sample=output) if return_dict else (output,)


class FusedResnetBlock(nn.Module):
    """``ResnetBlock2D`` (no resampling, additive or no time embedding, SiLU): SiLU in place on the
    norms' fresh outputs, the time embedding added in place, and the shortcut added in the
    second convolution's epilogue."""

    def __init__(self, block: ResnetBlock2D) -> None:
        super().__init__()
        self.norm1, self.norm2 = block.norm1, block.norm2
        self.conv1, self.conv2 = PackedConv2d(block.conv1), PackedConv2d(block.conv2)
        shortcut, time_projection = block.conv_shortcut, block.time_emb_proj
        self.conv_shortcut = None if shortcut is None else PackedConv2d(shortcut)
        self.time_emb_proj = None if time_projection is None else PackedLinear.of(time_projection)
        self.skip_time_act = block.skip_time_act
        # "group" (the VAE decoder's) ignores temb; ResnetBlock2D allows it only without one
        self.adds_time_embedding = block.time_embedding_norm == "default"
        self.output_scale_factor = block.output_scale_factor

    def forward(self, input_tensor: torch.Tensor, temb: torch.Tensor | None, *args, **kwargs):
        h = self.conv1(F.silu(self.norm1(input_tensor), inplace=True))
        if temb is not None and self.adds_time_embedding:
            if self.time_emb_proj is not None:
                temb = self.time_emb_proj(temb if self.skip_time_act else F.silu(temb))
                temb = temb[:, :, None, None]
            h.add_(temb)
        h = F.silu(self.norm2(h), inplace=True)
        shortcut = input_tensor if self.conv_shortcut is None else self.conv_shortcut(input_tensor)
        output = self.conv2.add(h, shortcut)
        return output if self.output_scale_factor == 1 else output / self.output_scale_factor


def fuse_blocks(model: nn.Module) -> int:
    """Replace the eligible diffusers blocks of ``model`` by their fused twins (weights packed);
    returns how many. Run before ``pack_weights``, which packs whatever is left."""
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if fusable_transformer(module) or fusable_resnet(module)
    ]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        twin = FusedTransformer2D if fusable_transformer(module) else FusedResnetBlock
        setattr(parent, child, twin(module))
    return len(targets)


def fusable_transformer(module: nn.Module) -> bool:
    return (
        type(module) is Transformer2DModel
        and module.is_input_continuous
        and module.use_linear_projection
        and module.config.out_channels in (None, module.config.in_channels)
        and type(module.norm) is nn.GroupNorm
        and all(_plain_linear(m) for m in (module.proj_in, module.proj_out))
        and all(fusable_block(block) for block in module.transformer_blocks)
    )


def fusable_block(block: nn.Module) -> bool:
    return (
        type(block) is BasicTransformerBlock
        and block.norm_type == "layer_norm"
        and block.pos_embed is None
        and not block.only_cross_attention
        and block._chunk_size is None
        and getattr(block, "fuser", None) is None
        and all(type(norm) is nn.LayerNorm for norm in (block.norm1, block.norm2, block.norm3))
        and block.attn2 is not None
        and all(_plain_attention(attention) for attention in (block.attn1, block.attn2))
        and _geglu_feed_forward(block.ff)
    )


def fusable_resnet(module: nn.Module) -> bool:
    return (
        type(module) is ResnetBlock2D
        and module.upsample is None
        and module.downsample is None
        and module.time_embedding_norm in ("default", "group")
        and type(module.nonlinearity) is nn.SiLU
        and all(type(norm) is nn.GroupNorm for norm in (module.norm1, module.norm2))
        and all(packable(conv) for conv in (module.conv1, module.conv2))
        and (module.conv_shortcut is None or packable(module.conv_shortcut))
        and (module.time_emb_proj is None or _plain_linear(module.time_emb_proj))
    )


def _plain_attention(attention: nn.Module) -> bool:
    """Exactly what ``AttnProcessor2_0`` computes with no optional parts configured."""
    return (
        type(attention) is Attention
        and type(attention.processor) is AttnProcessor2_0
        and attention.spatial_norm is None
        and attention.group_norm is None
        and attention.norm_q is None
        and attention.norm_k is None
        and attention.norm_cross is None
        and not attention.residual_connection
        and attention.rescale_output_factor == 1.0
        and all(
            _plain_linear(linear)
            for linear in (attention.to_q, attention.to_k, attention.to_v, attention.to_out[0])
        )
    )


def _geglu_feed_forward(feed_forward: nn.Module) -> bool:
    return (
        type(feed_forward) is FeedForward
        and len(feed_forward.net) == 3
        and type(feed_forward.net[0]) is GEGLU
        and _plain_linear(feed_forward.net[0].proj)
        and _plain_linear(feed_forward.net[2])
    )


def _plain_linear(module: nn.Module) -> bool:
    return type(module) is nn.Linear


def _contiguous(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.contiguous()


def _refuse_unsupported(
    attention_mask: torch.Tensor | None,
    encoder_attention_mask: torch.Tensor | None,
    cross_attention_kwargs: dict | None,
) -> None:
    """The fused blocks compute unmasked attention; say so rather than ignore a mask."""
    given = [
        name
        for name, value in (
            ("attention_mask", attention_mask),
            ("encoder_attention_mask", encoder_attention_mask),
            ("cross_attention_kwargs", cross_attention_kwargs or None),
        )
        if value is not None
    ]
    if given:
        raise ValueError(
            f"backend 'packed' fuses SDXL's transformer blocks without {', '.join(given)}; "
            "use backend 'eager' for pipelines that pass them"
        )
