"""Which malloc the process runs with: a per-image cost lever, not a detail.

Measured (BENCHMARKS.md, interleaved, same CPU): eager bf16 at 512x512 is 1.20x faster per image
with tcmalloc preloaded than with glibc malloc, whose large activation buffers (above its mmap
threshold) are mapped, page-faulted and zeroed again on every call; jemalloc was 0.88x. The
server image preloads tcmalloc; anywhere else the server says so at start-up.
"""

from __future__ import annotations

from pathlib import Path

KNOWN_ALLOCATORS = ("tcmalloc", "jemalloc")
TCMALLOC_HINT = (
    "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 "
    "(Debian/Ubuntu package libtcmalloc-minimal4)"
)


def active_allocator(maps: Path = Path("/proc/self/maps")) -> str:
    """The malloc actually mapped into this process (not what LD_PRELOAD asked for)."""
    try:
        mapped = maps.read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    return next((name for name in KNOWN_ALLOCATORS if f"lib{name}" in mapped), "glibc")
