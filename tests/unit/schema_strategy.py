"""Hypothesis strategies from a CRD's structural openAPIV3Schema (the subset Kubernetes allows).

hypothesis-jsonschema 0.23 uses Hypothesis internals that the pinned Hypothesis no longer has
(`many.more`), so this small generator covers what structural schemas can say: objects with
properties/required/additionalProperties/maxProperties, arrays with min/maxItems, strings with
enum/pattern/min/maxLength, bounded integers, booleans, int-or-string and pass-through objects
(x-kubernetes-preserve-unknown-fields: any JSON). CEL rules are not modelled, so it generates a
superset of what the API server accepts.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _string(node: dict[str, Any]) -> st.SearchStrategy[str]:
    if "enum" in node:
        return st.sampled_from(node["enum"])
    lo, hi = node.get("minLength", 0), node.get("maxLength", 40)
    if "pattern" in node:
        base = st.from_regex(node["pattern"], fullmatch=True)
    else:
        base = st.text(max_size=min(hi, 40))
    return base.filter(lambda s: lo <= len(s) <= hi)


def _integer(node: dict[str, Any]) -> st.SearchStrategy[int]:
    return st.integers(node.get("minimum", -(2**31)), node.get("maximum", 2**31))


def strategy(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    if node.get("x-kubernetes-int-or-string"):
        return st.integers(0, 2**40) | _string(node)
    kind = node.get("type")
    if kind == "string":
        return _string(node)
    if kind == "integer":
        return _integer(node)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(
            strategy(node.get("items") or {}),
            min_size=node.get("minItems", 0),
            max_size=min(node.get("maxItems", 4), 4),
        )
    if kind == "object":
        return _object(node)
    return JSON


def _object(node: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    props = node.get("properties") or {}
    required = set(node.get("required") or [])
    fixed = st.fixed_dictionaries(
        {k: strategy(v) for k, v in props.items() if k in required},
        optional={k: strategy(v) for k, v in props.items() if k not in required},
    )
    extra: st.SearchStrategy[dict[str, Any]] | None = None
    if isinstance(node.get("additionalProperties"), dict):
        extra = st.dictionaries(
            st.text(min_size=1, max_size=12),
            strategy(node["additionalProperties"]),
            max_size=min(node.get("maxProperties", 3), 3),
        )
    elif node.get("x-kubernetes-preserve-unknown-fields"):
        extra = st.dictionaries(st.text(min_size=1, max_size=12), JSON, max_size=3)
    if extra is None:
        return fixed
    return st.tuples(extra, fixed).map(lambda pair: {**pair[0], **pair[1]})
