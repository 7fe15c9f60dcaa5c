#!/usr/bin/env bash
# Reproduce the inference rows of BENCHMARKS.md on this machine, one after another (a quiet CPU
# matters: run nothing else meanwhile). Each row's JSON goes to $OUT/<row>.json; the exact
# t2i-bench command of every row is printed before it runs.
#
#   bash hack/bench_inference.sh [ROW ...]     # default: all rows; e.g. `compare-ipex startup`
#   PAIRS=15 bash hack/bench_inference.sh compare-ipex   # more interleaved pairs (default 5):
#                                                        # for a noisy, shared host
#   STARTUP_BACKENDS=packed bash hack/bench_inference.sh startup   # default: packed eager compile
#   python3 hack/bench_summary.py .bench-results/<run>   # the run's rows as Markdown tables
#
# The synthetic SDXL-Turbo checkpoint (real architecture, random weights, bf16, 6.9 GB) is
# written once under ~/.cache/t2i-operator by the IPEX venv's older transformers, whose format
# both venvs load (like the published checkpoint); then every row loads it from disk.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cache=${T2I_CACHE:-$HOME/.cache/t2i-operator}
V=$(bash hack/venv.sh)
IPEX=$(bash hack/ipex-venv.sh)
# jemalloc/tcmalloc for the allocator rows (Debian packages unpacked into the cache)
ALLOC=$(bash hack/allocators.sh || echo /allocators-unavailable)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-$root/.bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
MODEL=$cache/sdxl-turbo-synthetic-v1
mkdir -p "$OUT"
if [ ! -f "$MODEL/.complete" ]; then
  echo ">> writing the synthetic checkpoint to $MODEL" >&2
  rm -rf "$MODEL"
  "$IPEX" -m inference_server.bench.cli --synthetic --bf16 --save-model "$MODEL" >&2
  touch "$MODEL/.complete"
fi
lscpu | grep -E 'Model name|^CPU\(s\)' | tee "$OUT/cpu.txt"

TC=$ALLOC/libtcmalloc_minimal.so.4
PAIRS=${PAIRS:-5}
bench() {  # bench ROW ARGS...: run t2i-bench with ARGS on the synthetic checkpoint
  # Single rows run with tcmalloc preloaded, as the server image does; --compare rows name
  # each side's allocator themselves (BACKEND+LIB).
  # Rows of the ipex backend run in the IPEX venv (torch 2.8), the others in ours.
  local row=$1; shift
  local preload=$TC python=$V/bin/python
  local -a env_of_row=(${row_env[$row]:-})
  [[ " $* " == *" --compare "* ]] && preload=${LD_PRELOAD:-}
  [[ " $* " == *" --backend ipex "* ]] && python=$IPEX
  echo ">> [$row] ${env_of_row[*]} $python -m inference_server.bench.cli --model \$MODEL --bf16 $*" >&2
  env "${env_of_row[@]}" LD_PRELOAD="$preload" "$python" -m inference_server.bench.cli --model "$MODEL" --bf16 \
    --json "$@" | tail -1 > "$OUT/$row.json"
}

# Interleaved pairs must fit in memory together (24 GiB here): IPEX ~12 GB + packed ~8 GB and
# eager + compile ~21 GB fit; compile beside IPEX (~23 GB) and int8 (~19 GB peak while it
# quantizes) beside anything do not, so those run alone, int8 saving its image for the PSNR
# against the default's image of the same seed (written by the packed row).
# compare-fusion / compare-kv-cache: packed as it was before the fused blocks (commit 81becfa)
# and before the cross-attention K/V cache (356fb35), unpacked from git into the cache, against
# packed now. The CLI runs from outside the checkout so that each worker imports the tree its
# PYTHONPATH names.
declare -A trees=([compare-fusion]=81becfa [compare-kv-cache]=356fb35)
declare -A rows=(
  [compare-fusion]="--repeat $PAIRS --compare packed+$TC+PYTHONPATH=$cache/tree-81becfa packed+$TC"
  [compare-kv-cache]="--repeat $PAIRS --compare packed+$TC+PYTHONPATH=$cache/tree-356fb35 packed+$TC"
  [compare-ipex]="--repeat $PAIRS --compare ipex@$IPEX packed+$TC"
  [compare-ipex-tcmalloc]="--repeat $PAIRS --compare ipex+$TC@$IPEX packed+$TC"
  [compare-packed]="--repeat $PAIRS --compare eager+$TC packed+$TC"
  [compare-compile]="--repeat $PAIRS --compare eager+$TC compile+$TC"
  [compare-compile-packed]="--repeat $PAIRS --compare compile+$TC packed+$TC"
  [compare-tcmalloc]="--repeat $PAIRS --compare eager eager+$TC"
  [compare-jemalloc]="--repeat $PAIRS --compare eager eager+$ALLOC/libjemalloc.so.2"
  # PyTorch's own switch: its CPU allocator aligns buffers >= 2 MB and madvises huge pages
  [compare-thp]="--repeat $PAIRS --compare packed+$TC packed+$TC+THP_MEM_ALLOC_ENABLE=1"
  [packed]="--repeat 3 --backend packed --image-out $OUT/packed.png"
  [eager]="--repeat 3 --backend eager --image-out $OUT/eager.png"
  [int8]="--repeat 3 --backend int8 --image-out $OUT/int8.png --reference-image $OUT/packed.png"
  # the VAE decoder in int8 too (T2I_INT8_VAE=on; off, the default, is the int8 row)
  [int8-vae]="--repeat 3 --backend int8 --image-out $OUT/int8-vae.png --reference-image $OUT/packed.png"
  # batch 4 against batch 1 interleaved (target 4 is a ratio; sequential rows drift apart)
  [compare-batch4]="--repeat $PAIRS --compare packed+$TC packed+$TC --compare-batches 1 4"
  [batch4-packed]="--batch 4 --repeat 2 --backend packed"
  [batch4-int8]="--batch 4 --repeat 2 --backend int8"
  [batch4-ipex]="--batch 4 --repeat 2 --backend ipex"
  [batch4-eager]="--batch 4 --repeat 2 --backend eager"
  [batch4-compile]="--batch 4 --repeat 2 --backend compile"
  [1024-packed]="--height 1024 --width 1024 --repeat 2 --backend packed"
  [1024-int8]="--height 1024 --width 1024 --repeat 2 --backend int8"
  [1024-ipex]="--height 1024 --width 1024 --repeat 2 --backend ipex"
  [1024-eager]="--height 1024 --width 1024 --repeat 2 --backend eager"
  [1024-compile]="--height 1024 --width 1024 --repeat 2 --backend compile"
  [profile-packed]="--repeat 1 --backend packed --no-flops --profile"
  [profile-eager]="--repeat 1 --backend eager --no-flops --profile"
  [profile-compile]="--repeat 1 --backend compile --no-flops --profile"
)
# Environment of a row's t2i-bench process (beside LD_PRELOAD).
declare -A row_env=([int8-vae]="T2I_INT8_VAE=on")
order=(compare-fusion compare-kv-cache compare-ipex compare-ipex-tcmalloc compare-packed compare-compile compare-compile-packed compare-tcmalloc
  compare-jemalloc packed eager int8 startup batch4-packed batch4-eager batch4-compile 1024-packed 1024-eager 1024-compile
  profile-packed profile-eager profile-compile weight-traffic compare-thp compare-batch4 batch4-int8 1024-int8 batch4-ipex 1024-ipex int8-vae)
selected=("${@:-${order[@]}}")
for row in "${selected[@]}"; do
  if [ "$row" = startup ]; then
    # compile at --max-batch 1: every warmed (size, batch) graph freezes its own copy of the
    # weights, and batches 1..4 ran out of 24 GiB (the server was OOM-killed).
    for backend in ${STARTUP_BACKENDS:-packed eager compile}; do
      echo ">> [startup-$backend] T2I_MAX_BATCH=1 python -m inference_server.bench.startup" \
        "--backend $backend (tcmalloc preloaded)" >&2
      T2I_MAX_BATCH=1 LD_PRELOAD=$TC "$V/bin/python" -m inference_server.bench.startup \
        --model-dir "$MODEL" --backend "$backend" --runs 2 | tail -1 > "$OUT/startup-$backend.json"
    done
  elif [ "$row" = weight-traffic ]; then
    # packed GEMMs at UNet shapes, weight hot vs cycling through 768 MB of weights; bandwidth
    echo ">> [weight-traffic] python -m inference_server.bench.weight_traffic --threads 2" >&2
    "$V/bin/python" -m inference_server.bench.weight_traffic --threads 2 | tail -1 \
      > "$OUT/weight-traffic.json"
  elif [ -n "${trees[$row]:-}" ]; then
    tree=$cache/tree-${trees[$row]}
    if [ ! -f "$tree/.complete" ]; then
      rm -rf "$tree" && mkdir -p "$tree"
      git -C "$root" archive "${trees[$row]}" inference_server | tar -x -C "$tree"
      touch "$tree/.complete"
    fi
    # shellcheck disable=SC2086
    (cd / && bench "$row" ${rows[$row]})
  else
    # shellcheck disable=SC2086  # the row's flags are meant to split
    bench "$row" ${rows[$row]}
  fi
done
echo "results: $OUT" >&2
