"""kopf's "last handled" record as a digest, so its size never depends on the spec's.

kopf keeps the last handled essence (spec, labels, annotations) in an annotation to tell an
update from a no-op. All annotations of an object share 256 KiB, so a large spec — or a user's
own large annotations, counted twice — made that write fail, and an OSS resource could then
never release its finalizer. The handlers never read kopf's diff (every pass renders the whole
spec), so a digest of the same essence answers "changed or not" equally well in ~80 bytes.
A full essence stored by an older operator reads as "changed" once, and is replaced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import kopf


class DigestDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        essence = super().build(body=body, extra_fields=extra_fields)
        return {"sha256": essence_digest(essence)}  # type: ignore[typeddict-unknown-key]


def essence_digest(essence: Any) -> str:
    canonical = json.dumps(essence, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
