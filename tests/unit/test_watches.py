"""Issue 16 item 8: every namespaced kind the operator owns, except the Secret copy, is watched,
so drift is reverted at once and not at the resync; the Secret copy is immutable instead."""

from __future__ import annotations

import kopf
from t2i_operator import handlers  # noqa: F401  (registers the handlers)
from t2i_operator.render.storage import render_credentials_secret
from tutorial import CREDENTIALS, OWNER


def watched() -> set[str]:
    registry = kopf.get_default_registry()
    return {h.selector.plural or h.selector.any_name for h in registry._watching.get_all_handlers()}


def test_every_owned_kind_but_secrets_is_watched():
    assert {
        "deployments",
        "services",
        "horizontalpodautoscalers",
        "persistentvolumeclaims",
        "pods",
    } <= watched()


def test_the_secret_copy_is_immutable():
    assert render_credentials_secret(OWNER, CREDENTIALS)["immutable"] is True
