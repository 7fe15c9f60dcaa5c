"""Which malloc the process runs with: a per-image cost lever, not a detail.

With glibc malloc, large activation buffers (above its mmap threshold) are mapped, page-faulted
and zeroed again on every call; tcmalloc keeps them, and is measurably faster per image, jemalloc
slower (BENCHMARKS.md, "Third session": the interleaved allocator pairs, with their CPU). The
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
