"""One output directory shared by several servers (replicas on a ReadWriteMany volume): two
ImageStore instances on one real directory stand for two processes. Any of them serves any
request's images; no retention pass deletes what another is still writing; a killed writer's
leftovers go once its marker is stale; concurrent writers and cleaners never fail a save and
keep the shared directory within its bound."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

from PIL import Image

from inference_server.store import WRITING, ImageStore


def png() -> Image.Image:
    return Image.new("RGB", (8, 8), (4, 5, 6))


def backdate(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    for item in (path, *path.iterdir()) if path.is_dir() else (path,):
        os.utime(item, (past, past))


def test_a_request_written_by_one_store_is_served_by_the_other(tmp_path):
    writer, reader = ImageStore(tmp_path), ImageStore(tmp_path)
    request_id = writer.new_id()
    writer.save(request_id, "0_0.png", png())
    writer.release(request_id)
    served = reader.resolve(request_id, "0_0.png")
    assert served is not None and Image.open(served).size == (8, 8)
    assert reader.resolve(request_id, "0_1.png") is None


def test_retention_in_one_store_spares_what_the_other_is_writing(tmp_path):
    writer, cleaner = ImageStore(tmp_path, max_requests=1), ImageStore(tmp_path, max_requests=1)
    writing, done = writer.new_id(), cleaner.new_id()
    writer.save(writing, "0_0.png", png())
    backdate(tmp_path / writing, 50)  # the oldest: first in line for deletion
    (tmp_path / writing / WRITING).touch()  # ... but its writer is alive
    cleaner.save(done, "0_0.png", png())
    cleaner.release(done)
    assert cleaner.enforce_retention(keep=done) == []
    writer.save(writing, "1_0.png", png())  # the directory is still there to write into
    writer.release(writing)
    assert not (tmp_path / writing / WRITING).exists()
    assert cleaner.enforce_retention(keep=done) == [writing]
    assert cleaner.resolve(done, "0_0.png") is not None


def test_start_up_leaves_another_writers_temporary_files_alone(tmp_path):
    writer = ImageStore(tmp_path)
    request_id = writer.new_id()
    writer.save(request_id, "0_0.png", png())  # not released: still writing
    in_progress = tmp_path / request_id / ".1_0.png.cafe.tmp"
    in_progress.write_bytes(b"being written")
    ImageStore(tmp_path)  # a second replica starting
    assert in_progress.exists() and (tmp_path / request_id / WRITING).exists()


def test_a_killed_writers_leftovers_go_once_its_marker_is_stale(tmp_path):
    killed = ImageStore(tmp_path, writer_timeout=60)
    request_id = killed.new_id()
    killed.save(request_id, "0_0.png", png())  # never released: the process died
    leftover = tmp_path / request_id / ".1_0.png.beef.tmp"
    leftover.write_bytes(b"partial")
    staging = tmp_path / f".new-{uuid.uuid4().hex}"
    staging.mkdir()
    backdate(tmp_path / request_id, 120)
    backdate(staging, 120)
    other = ImageStore(tmp_path, max_requests=0, writer_timeout=60)
    assert not leftover.exists() and not staging.exists()
    assert not (tmp_path / request_id).exists(), "a stale writer does not pin its request"
    assert other.enforce_retention() == []


def test_two_stores_writing_and_cleaning_concurrently(tmp_path):
    """Two 'replicas' x 3 request threads, each saving 2 images per request then enforcing a
    bound of 4 requests: every save succeeds, each request is readable by the other store
    right after its own save, and the directory ends within the bound."""
    stores = [ImageStore(tmp_path, max_requests=4), ImageStore(tmp_path, max_requests=4)]
    errors: list[BaseException] = []
    unreadable: list[str] = []

    def worker(mine: ImageStore, theirs: ImageStore) -> None:
        try:
            for _ in range(15):
                request_id = mine.new_id()
                for index in range(2):
                    mine.save(request_id, f"{index}_0.png", png())
                if theirs.resolve(request_id, "0_0.png") is None:
                    unreadable.append(request_id)
                mine.release(request_id)
                mine.enforce_retention(keep=request_id)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [
        threading.Thread(target=worker, args=(stores[i % 2], stores[1 - i % 2])) for i in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and unreadable == []
    stores[0].enforce_retention()
    left = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert len(left) <= 4
    assert not list(tmp_path.glob("*/.writing")) and not list(tmp_path.glob(".new-*"))
