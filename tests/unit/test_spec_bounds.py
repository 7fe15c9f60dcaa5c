"""Issue 16 item 7: every spec the API server accepts has a bounded size.

kubectl's client-side apply copies the whole object into one annotation, and all annotations of
an object share 256 KiB; the operator's own record is a digest (t2i_operator.diffbase). So the
largest spec the schema admits must leave room in that budget for the user's own annotations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kopf
import yaml
from t2i_operator.diffbase import DigestDiffBaseStorage

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "t2i.dev_text2imageservices.yaml").read_text())
SPEC = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
ANNOTATIONS_LIMIT = 256 * 1024
SPEC_BUDGET = 192 * 1024  # the rest is for the user's annotations (which kubectl copies too)
MAP_KEY = 316  # a label key: optional 253-character DNS prefix, '/', 63-character name
# Go's encoder escapes <, > and & as \u00XX: six bytes per character where a pattern allows them.
UNCONSTRAINED_CHAR = 6


def unbounded(node: dict[str, Any], path: str = "spec") -> list[str]:
    """Paths where a value of any size would be admitted."""
    found = []
    if node.get("x-kubernetes-preserve-unknown-fields"):
        found.append(f"{path} (preserve-unknown-fields)")
    kind = node.get("type")
    if kind == "string" and "maxLength" not in node and "enum" not in node:
        found.append(path)
    if kind == "array":
        if "maxItems" not in node:
            found.append(f"{path}[]")
        found += unbounded(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        if "maxProperties" not in node:
            found.append(f"{path}{{}}")
        found += unbounded(node["additionalProperties"], f"{path}{{}}")
    for alternative in node.get("anyOf", []):
        found += unbounded({**alternative, "maxLength": node.get("maxLength", 0)}, path)
    for name, sub in (node.get("properties") or {}).items():
        found += unbounded(sub, f"{path}.{name}")
    return found


def largest_json(node: dict[str, Any]) -> int:
    """An upper bound on the JSON bytes of any value the schema admits."""
    if "enum" in node:
        return max(len(json.dumps(v)) for v in node["enum"])
    if node.get("x-kubernetes-int-or-string"):
        return max(22, node.get("maxLength", 0) + 2)
    kind = node.get("type")
    if kind == "string":
        per_char = 1 if "pattern" in node else UNCONSTRAINED_CHAR
        return node["maxLength"] * per_char + 2
    if kind in ("integer", "number"):
        return 22
    if kind == "boolean":
        return 5
    if kind == "array":
        return 2 + node["maxItems"] * (largest_json(node["items"]) + 1)
    size = 2
    for name, sub in (node.get("properties") or {}).items():
        size += len(name) + 4 + largest_json(sub)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        size += node["maxProperties"] * (MAP_KEY + 4 + largest_json(extra))
    return size


def test_no_field_of_the_spec_is_unbounded():
    assert unbounded(SPEC) == []


def test_the_largest_admissible_spec_fits_the_annotation_budget():
    assert largest_json(SPEC) <= SPEC_BUDGET < ANNOTATIONS_LIMIT


def _body(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": "t2i.dev/v1alpha1",
            "kind": "Text2ImageService",
            "metadata": {"name": "a", "namespace": "n", "annotations": annotations or {}},
            "spec": spec,
        }
    )


def test_kopf_record_is_a_fixed_size_digest_that_still_sees_every_change():
    storage = DigestDiffBaseStorage(prefix="t2i.dev", key="last-handled-configuration")
    huge = {"tolerations": [{"key": "k" * 300}] * 1000}
    notes = {"example.com/notes": "n" * 200_000}
    essence = storage.build(body=_body(huge, notes))
    patch = kopf.Patch()
    storage.store(body=_body(huge), patch=patch, essence=essence)
    record = patch["metadata"]["annotations"]["t2i.dev/last-handled-configuration"]
    assert len(record) < 100
    stored = _body(huge, {**notes, "t2i.dev/last-handled-configuration": record})
    assert storage.fetch(body=stored) == storage.build(body=stored)  # its own record is ignored
    changed = {"tolerations": [{"key": "k" * 300}] * 999}
    assert storage.build(body=_body(changed)) != storage.build(body=_body(huge))
    relabelled = _body(huge, {"example.com/notes": "m"})
    assert storage.build(body=relabelled) != storage.build(body=_body(huge))
