"""Serve the UNet from a shape-specialised graph (a jit trace or an int8 inductor graph).

Diffusers' SDXL pipeline calls ``unet(sample, t, encoder_hidden_states=..., added_cond_kwargs=
{"text_embeds", "time_ids"}, return_dict=False)[0]`` and reads a few attributes (``config``,
``dtype``, ``add_embedding``). ``UNetCore`` flattens that call into plain tensors so it can be
traced or exported; ``GraphUNet`` puts the optimised graph back behind the same interface, so
the stock pipeline runs it unchanged, one graph per (size, batch) built on first use.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class UNetCore(torch.nn.Module):
    """The SDXL UNet call with tensor-only arguments (what trace and export need)."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds, time_ids):
        added = {"text_embeds": text_embeds, "time_ids": time_ids}
        return self.unet(
            sample, timestep, encoder_hidden_states, added_cond_kwargs=added, return_dict=False
        )[0]


def core_arguments(sample, timestep, encoder_hidden_states, added_cond_kwargs) -> tuple:
    """The pipeline's call as UNetCore's positional tensors (timestep as a 0-d tensor)."""
    timestep = torch.as_tensor(timestep)
    return (
        sample,
        timestep,
        encoder_hidden_states,
        added_cond_kwargs["text_embeds"],
        added_cond_kwargs["time_ids"],
    )


# A builder turns example core arguments into a callable graph for exactly those shapes.
GraphBuilder = Callable[[tuple], Callable[..., torch.Tensor]]


class GraphUNet(torch.nn.Module):
    """Drop-in ``pipe.unet``: builds and caches one graph per input shape via ``build``."""

    def __init__(self, unet: torch.nn.Module, build: GraphBuilder, dtype: torch.dtype) -> None:
        super().__init__()
        self.config = unet.config
        self.add_embedding = unet.add_embedding  # read by the pipeline's add_time_ids check
        self._dtype = dtype
        self._build = build
        self._graphs: dict[tuple, Callable[..., torch.Tensor]] = {}

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(
        self,
        sample,
        timestep,
        encoder_hidden_states,
        timestep_cond=None,
        cross_attention_kwargs=None,
        added_cond_kwargs=None,
        return_dict: bool = True,
    ):
        if timestep_cond is not None or cross_attention_kwargs:
            raise ValueError("this UNet graph serves plain SDXL calls only")
        args = core_arguments(sample, timestep, encoder_hidden_states, added_cond_kwargs)
        key = tuple(tuple(arg.shape) for arg in args)
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graphs[key] = self._build(args)
        out = graph(*args).to(self._dtype)
        if return_dict:
            from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

            return UNet2DConditionOutput(sample=out)
        return (out,)
