"""Helpers for the playground's browser tests: Debian's chromium driven by Playwright (no browser
download), the app served over real HTTP by waitress in a thread, screenshots as artifacts."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import waitress

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}


def chromium_path() -> str:
    """The browser hack/test.sh installed (hack/chromium.sh); a missing one fails, never skips."""
    path = os.environ.get("T2I_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(path).exists(), f"no chromium at {path}: run `bash hack/chromium.sh` (as root)"
    return path


def artifacts_dir(base: Path) -> Path:
    """``$T2I_TEST_ARTIFACTS/playground`` when set (CI uploads it), else under pytest's tmp."""
    root = os.environ.get("T2I_TEST_ARTIFACTS")
    directory = Path(root) / "playground" if root else base / "playground-screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@contextmanager
def serve(app) -> Iterator[str]:
    """Serve ``app`` with waitress (as production does) on a free port; yield its base URL."""
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=8)
    thread = threading.Thread(target=server.run, name="waitress-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        server.task_dispatcher.shutdown()
        thread.join(10)
