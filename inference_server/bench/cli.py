"""t2i-bench: time the production pipeline path (load → prepare → generate) on this CPU.

Figures are only comparable within one run on one machine, so the CPU model and its bf16/AMX
flags and a bf16 (and int8) matmul peak measured in the same run are reported beside every
latency. ``--compare A B`` times two configurations interleaved, each in its own process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from inference_server.bench.machine import (
    cpu_info,
    int8_matmul_peak_tops,
    matmul_peak_tflops,
    peak_rss_gb,
)
from inference_server.engine.backends import BACKENDS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--no-flops", dest="flops", action="store_false")
    parser.add_argument("--no-peak", dest="peak", action="store_false")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="time two configs interleaved: BACKEND[+LIB|+NAME=VALUE ...][@PYTHON]; LIB is "
        "LD_PRELOADed, NAME=VALUE set in the environment, PYTHON another venv's interpreter",
    )
    parser.add_argument(
        "--compare-batches",
        nargs=2,
        type=int,
        metavar=("A", "B"),
        help="with --compare: each side's batch (default: --batch for both); ratios per image",
    )
    parser.add_argument("--save-model", metavar="DIR", help="write the pipeline to DIR and exit")
    parser.add_argument(
        "--profile", action="store_true", help="add a torch.profiler breakdown of one call"
    )
    parser.add_argument("--image-out", type=Path, help="save the first timed call's first image")
    parser.add_argument(
        "--reference-image",
        type=Path,
        help="report the PSNR of --image-out against this PNG (same seed, another backend)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.batch < 1 or args.step < 1:
        parser.error("--repeat, --batch and --step must be ≥ 1")
    for spec in args.compare or ():
        backend, *extras = spec.partition("@")[0].split("+")
        if backend not in BACKENDS:
            parser.error(f"--compare: unknown backend in {spec!r}; one of {', '.join(BACKENDS)}")
        for extra in extras:
            if "=" not in extra and not Path(extra).is_file():
                parser.error(f"--compare: no library {extra!r} to preload in {spec!r}")
    if args.compare_batches and (not args.compare or min(args.compare_batches) < 1):
        parser.error("--compare-batches needs --compare and batches ≥ 1")
    if args.height % 8 or args.width % 8:
        parser.error("--height and --width must be multiples of 8")
    return args


def worker_argv(args: argparse.Namespace, batch: int) -> list[str]:
    """The flags a --compare worker needs: the shape, the model, never --compare itself."""
    argv = ["--batch", str(batch), "--height", str(args.height), "--width", str(args.width)]
    argv += ["--step", str(args.step), "--prompt", args.prompt, "--threads", str(args.threads)]
    argv += ["--bf16"] if args.bf16 else []
    argv += ["--synthetic"] if args.synthetic else ["--model", args.model] if args.model else []
    argv += [] if args.flops else ["--no-flops"]
    return argv


def run_single(args: argparse.Namespace) -> dict:
    from inference_server.bench.runner import BenchSession

    session = BenchSession(args)
    latencies = [session.warmup_s]
    for _ in range(args.repeat):
        seconds, images = session.timed_call()
        if args.image_out and len(latencies) == 1:
            images[0].save(args.image_out)
        latencies.append(seconds)
    mean = statistics.fmean(latencies[1:])
    result = {
        **session.describe(),
        "latencies_s": [round(x, 4) for x in latencies],
        "mean_s_excl_warmup": mean,
        "s_per_image": mean / args.batch,
        "images_per_s": args.batch / mean,
        "startup_s": session.startup_s,
        "load_s": session.load_s,
        "prepare_s": session.prepare_s,
        "peak_rss_gb": peak_rss_gb(),
    }
    if args.profile:
        from inference_server.bench.profile import profile_call
        from inference_server.bench.runner import call

        result["profile"] = profile_call(lambda: call(session.pipe, args))
    if args.image_out and args.reference_image:
        from inference_server.bench.compare import psnr

        result["psnr_db_vs_reference"] = psnr(args.reference_image, args.image_out)
    if session.flops:
        result["flops_per_image"] = session.flops
        result["tflops"] = session.flops["total"] / result["s_per_image"] / 1e12
    return result


def save_model(args: argparse.Namespace) -> int:
    """Write the (synthetic) pipeline in diffusers format: a stand-in checkpoint for load timing
    and for workers in other venvs, which then all run identical weights."""
    from inference_server.bench.runner import build_pipeline
    from inference_server.engine.backends import resolve_dtype

    torch.manual_seed(0)
    pipe = build_pipeline(args, resolve_dtype("bf16" if args.bf16 else "fp32"))
    pipe.save_pretrained(args.save_model, safe_serialization=True)
    print(args.save_model)
    return 0


def measure_peaks(report: dict) -> None:
    """Best of before and after the run: AMX warm, and passing load from others filtered out."""
    report["bf16_matmul_peak_tflops"] = max(
        report.get("bf16_matmul_peak_tflops", 0.0), matmul_peak_tflops()
    )
    report["int8_matmul_peak_tops"] = max(
        report.get("int8_matmul_peak_tops", 0.0), int8_matmul_peak_tops()
    )


def add_fraction_of_peak(result: dict, peak: float) -> None:
    if result.get("tflops"):
        result["pct_of_bf16_peak"] = 100 * result["tflops"] / peak


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.save_model:
        return save_model(args)
    report: dict = {"cpu": cpu_info(), "torch": torch.__version__}
    if args.peak:
        measure_peaks(report)
    if args.compare:
        from inference_server.bench.compare import WorkerFailed, run_compare

        try:
            batches = args.compare_batches or (args.batch, args.batch)
            result = run_compare(args, [worker_argv(args, batch) for batch in batches])
        except WorkerFailed as error:
            print(f"t2i-bench: {error}", file=sys.stderr)
            return 1
    else:
        result = run_single(args)
    if args.peak:
        measure_peaks(report)
        for side in result.get("sides", {"": result}).values():
            add_fraction_of_peak(side, report["bf16_matmul_peak_tflops"])
    report["result"] = result
    if args.json:
        print(json.dumps(report))
    else:
        print_human(report)
    return 0


def print_human(report: dict) -> None:
    result = report.pop("result")
    for key, value in report.items():
        print(f"{key}: {value}")
    if "sides" not in result:
        for key, value in result.items():
            print(f"{key}: {value}")
        return
    for label, side in result["sides"].items():
        print(f"[{label}]")
        for key, value in side.items():
            print(f"  {key}: {value}")
    speedup = result["speedup_b_over_a"]
    print(
        f"{result['b']} vs {result['a']}: {speedup['median']:.3f}x faster per image "
        f"(median of {len(speedup['pairs'])} interleaved pairs; "
        f"range {speedup['min']:.3f}-{speedup['max']:.3f}; "
        f"ratio of means {speedup['ratio_of_means']:.3f})"
    )
    print(
        f"PSNR of {result['b']}'s image vs {result['a']}'s (same seed): {result['psnr_db_b_vs_a']}"
    )


if __name__ == "__main__":
    sys.exit(main())
