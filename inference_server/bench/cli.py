"""t2i-bench: time the production pipeline path (load → prepare → generate) on this CPU.

Figures are only comparable within one run on one machine, so the CPU model and its bf16/AMX
flags and a bf16 matmul peak measured in the same run are reported beside every latency.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from inference_server.engine.backends import BACKENDS, prepare_pipeline, resolve_dtype


def cpu_info() -> dict:
    """CPU model name and the ISA flags that decide bf16/int8 speed."""
    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("amx_bf16", "amx_int8", "avx512_bf16", "avx512f")
    return {"model": model, "flags": [f for f in wanted if f in flags]}


def matmul_peak_tflops(sizes=(2048, 4096), repeat: int = 3) -> float:
    """Best bf16 square matmul rate: the denominator for '% of peak'."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, dtype=torch.bfloat16)
        b = torch.randn(n, n, dtype=torch.bfloat16)
        a @ b
        for _ in range(repeat):
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e12)
    return best


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def build_pipeline(args, dtype):
    """Load ``--model`` through the server's loader, or the tiny/synthetic stand-in."""
    from inference_server.engine.loader import load_pipeline

    if args.synthetic:
        from inference_server.bench.synthetic import build_synthetic_sdxl

        return build_synthetic_sdxl(dtype)
    if args.model is None:
        from inference_server.tiny_model import save_tiny_pipeline

        args.model = save_tiny_pipeline(Path(tempfile.mkdtemp(prefix="t2i-bench-")) / "tiny")
    return load_pipeline(Path(args.model), dtype)


def call(pipe, args, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return pipe(
        prompt=[args.prompt] * args.batch,
        num_inference_steps=args.step,
        guidance_scale=0.0,
        height=args.height,
        width=args.width,
        generator=generator,
    ).images


def flops_per_image(pipe, args) -> dict:
    """FLOPs of one full call split by component (FlopCounterMode), divided by the batch."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        call(pipe, args)
    by_module = counter.get_flop_counts()
    parts = {
        name: sum(by_module.get(key, {}).values()) / args.batch
        for name, key in (
            ("unet_all_steps", "UNet2DConditionModel"),
            ("text_encoder", "CLIPTextModel"),
            ("text_encoder_2", "CLIPTextModelWithProjection"),
        )
    }
    parts["total"] = counter.get_total_flops() / args.batch
    # vae.decode is a method, not a module call, so the tracker does not name it: it is the rest.
    parts["vae_decode_and_rest"] = parts["total"] - sum(v for k, v in parts.items() if k != "total")
    return parts


def run_one(args, backend: str) -> dict:
    dtype = resolve_dtype("bf16" if args.bf16 else "fp32")
    start = time.perf_counter()
    pipe = build_pipeline(args, dtype)
    load_s = time.perf_counter() - start
    pipe = prepare_pipeline(pipe, backend, dtype)
    latencies = []
    with torch.inference_mode():
        for _ in range(args.repeat + 1):
            t0 = time.perf_counter()
            images = call(pipe, args)
            latencies.append(time.perf_counter() - t0)
    assert len(images) == args.batch
    steady = latencies[1:]
    mean = statistics.fmean(steady)
    result = {
        "backend": backend,
        "dtype": str(dtype).removeprefix("torch."),
        "height": args.height,
        "width": args.width,
        "batch": args.batch,
        "steps": args.step,
        "latencies_s": [round(x, 4) for x in latencies],
        "mean_s_excl_warmup": mean,
        "s_per_image": mean / args.batch,
        "images_per_s": args.batch / mean,
        "startup_s": load_s + latencies[0],
        "load_s": load_s,
        "peak_rss_gb": peak_rss_gb(),
    }
    if args.flops:
        flops = flops_per_image(pipe, args)
        result["flops_per_image"] = flops
        result["tflops"] = flops["total"] / result["s_per_image"] / 1e12
    return result


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="t2i-bench", description=__doc__)
    parser.add_argument("--bf16", action="store_true", help="bf16 weights (else fp32)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3, help="timed calls after one warm-up")
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--prompt", default="A panda listening to music with headphones.")
    parser.add_argument("--model", help="diffusers model dir (default: a tiny random one)")
    parser.add_argument("--backend", choices=BACKENDS, default="eager")
    parser.add_argument("--synthetic", action="store_true", help="full SDXL-Turbo, random weights")
    parser.add_argument("--no-flops", dest="flops", action="store_false")
    parser.add_argument("--no-peak", dest="peak", action="store_false")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.batch < 1 or args.step < 1:
        parser.error("--repeat, --batch and --step must be ≥ 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = {"cpu": cpu_info(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    if args.peak:
        report["bf16_matmul_peak_tflops"] = matmul_peak_tflops()
    result = run_one(args, args.backend)
    if args.peak:  # again after the run: AMX/turbo warm, and other load may have passed
        report["bf16_matmul_peak_tflops"] = max(
            report["bf16_matmul_peak_tflops"], matmul_peak_tflops()
        )
    if "tflops" in result and "bf16_matmul_peak_tflops" in report:
        result["pct_of_peak"] = 100 * result["tflops"] / report["bf16_matmul_peak_tflops"]
    report["result"] = result
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in {**report, **result}.items():
            if key != "result":
                print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
