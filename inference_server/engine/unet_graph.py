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


CALIBRATION_PROMPTS = (
    "A panda listening to music with headphones.",
    "a photo of a red sports car on a mountain road at sunset",
)


class InputRecorder(torch.nn.Module):
    """Stands in for ``pipe.unet`` while calibration images are made; keeps every call's inputs."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet
        self.config = unet.config
        self.add_embedding = unet.add_embedding
        self.calls: list[tuple] = []

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def device(self) -> torch.device:
        return self.unet.device

    def forward(self, sample, timestep, encoder_hidden_states, added_cond_kwargs=None, **kwargs):
        args = core_arguments(sample, timestep, encoder_hidden_states, added_cond_kwargs)
        self.calls.append(tuple(arg.detach().clone() for arg in args))
        return self.unet(
            sample, timestep, encoder_hidden_states, added_cond_kwargs=added_cond_kwargs, **kwargs
        )


def record_unet_inputs(pipe, size: tuple[int, int], batch: int, steps: int = 4) -> list[tuple]:
    """Make calibration images (every calibration prompt at least once, ``batch`` per call)
    and return the UNet inputs of every step."""
    prompts = list(CALIBRATION_PROMPTS)
    while len(prompts) % batch:
        prompts.append(CALIBRATION_PROMPTS[len(prompts) % len(CALIBRATION_PROMPTS)])
    recorder = InputRecorder(pipe.unet)
    pipe.unet = recorder
    try:
        with torch.inference_mode():
            for first in range(0, len(prompts), batch):
                pipe(
                    prompt=prompts[first : first + batch],
                    num_inference_steps=steps,
                    guidance_scale=0.0,
                    width=size[0],
                    height=size[1],
                    generator=torch.Generator().manual_seed(0),
                )
    finally:
        pipe.unet = recorder.unet
    return recorder.calls


# A builder turns example core arguments into a callable graph for exactly those shapes.
GraphBuilder = Callable[[tuple], Callable[..., torch.Tensor]]


def shape_key(args: tuple) -> tuple:
    return tuple(tuple(arg.shape) for arg in args)


class GraphUNet(torch.nn.Module):
    """Drop-in ``pipe.unet``: builds and caches one graph per input shape via ``build``."""

    def __init__(
        self,
        unet: torch.nn.Module,
        build: GraphBuilder,
        dtype: torch.dtype,
        graphs: dict[tuple, Callable[..., torch.Tensor]] | None = None,
    ) -> None:
        super().__init__()
        self.config = unet.config
        self.add_embedding = unet.add_embedding  # read by the pipeline's add_time_ids check
        self._dtype = dtype
        self._build = build
        self._graphs = dict(graphs or {})

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
        key = shape_key(args)
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graphs[key] = self._build(args)
        out = graph(*args).to(self._dtype)
        if return_dict:
            from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

            return UNet2DConditionOutput(sample=out)
        return (out,)
