"""The malloc in use is read from the process's mappings, and bench sides configure it."""

from __future__ import annotations

from pathlib import Path

from inference_server.bench.compare import Side
from inference_server.engine.allocator import active_allocator

GLIBC_LINE = "7f00-7f10 r-xp 00000000 08:01 42 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
TCMALLOC_LINE = "7f20-7f30 r-xp 00000000 08:01 43 /opt/lib/libtcmalloc_minimal.so.4.5.10\n"


def test_active_allocator_is_the_mapped_library(tmp_path: Path):
    maps = tmp_path / "maps"
    maps.write_text(GLIBC_LINE)
    assert active_allocator(maps) == "glibc"
    maps.write_text(GLIBC_LINE + TCMALLOC_LINE)
    assert active_allocator(maps) == "tcmalloc"
    assert active_allocator(tmp_path / "absent") == "unknown"


def test_this_process_reports_a_real_allocator():
    assert active_allocator() in ("glibc", "tcmalloc", "jemalloc")


def test_bench_side_spec_splits_preloads_environment_and_interpreter():
    side = Side.parse("eager+/opt/lib/libtcmalloc.so.4+MALLOC_TOP_PAD_=1=2@/venvs/ipex/bin/python")
    assert side.backend == "eager"
    assert side.preload == ["/opt/lib/libtcmalloc.so.4"]
    assert side.env == {"MALLOC_TOP_PAD_": "1=2"}
    assert side.python == "/venvs/ipex/bin/python"
    assert side.label == "eager+libtcmalloc.so.4+MALLOC_TOP_PAD_=1=2@ipex"
    plain = Side.parse("compile")
    assert (plain.backend, plain.preload, plain.env, plain.label) == ("compile", [], {}, "compile")


def test_engine_reports_its_configuration_and_warns_on_glibc_malloc(tiny_model_dir, caplog):
    """Operators read the `engine ready` line to see what a pod actually runs with."""
    import logging

    from inference_server.engine.pipeline import DiffusersEngine, EngineConfig

    engine = DiffusersEngine(EngineConfig(model_dir=tiny_model_dir, threads=2))  # as conftest
    with caplog.at_level(logging.INFO, logger="inference_server.engine.pipeline"):
        engine.load()
    ready = [r for r in caplog.records if r.getMessage() == "engine ready"]
    assert len(ready) == 1
    assert ready[0].backend in ("packed", "eager") and ready[0].threads == 2
    assert ready[0].allocator == active_allocator() and ready[0].startup_s >= 0
    warned = any("tcmalloc" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert warned == (active_allocator() == "glibc")
