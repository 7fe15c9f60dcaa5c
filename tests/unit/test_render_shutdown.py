"""Issue 17, operator side: graceful shutdown sized to the longest generation, and the public
base URL passed to the server only when set."""

from __future__ import annotations

import pytest
from t2i_operator import spec
from t2i_operator.render import render_all
from tutorial import CREDENTIALS, OWNER


def pod_of(raw: dict) -> dict:
    (dep,) = [
        o for o in render_all(spec.parse(raw), OWNER, CREDENTIALS) if o["kind"] == "Deployment"
    ]
    return dep["spec"]["template"]["spec"]


def flag(pod: dict, name: str) -> str | None:
    args = pod["containers"][0]["args"]
    return args[args.index(name) + 1] if name in args else None


def test_default_grace_fits_one_full_batch_and_drain_leaves_room():
    pod = pod_of({})
    grace = pod["terminationGracePeriodSeconds"]
    # default maxBatch 4 x steps 4 x 3 s per image-step, + 5 s preStop + 5 s margin
    assert grace == 58
    assert int(flag(pod, "--drain-timeout")) == grace - 10
    assert pod["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}


@pytest.mark.parametrize(
    ("server", "grace"),
    [
        ({"maxBatch": 1, "steps": 1}, 30),  # floor
        ({"maxBatch": 16, "steps": 8}, 394),
        ({"maxBatch": 64, "steps": 50}, 3600),  # ceiling
        ({"gracePeriodSeconds": 120}, 120),  # explicit wins
    ],
)
def test_grace_follows_the_spec(server, grace):
    pod = pod_of({"server": server})
    assert pod["terminationGracePeriodSeconds"] == grace
    assert int(flag(pod, "--drain-timeout")) == grace - 10


def test_public_base_url_only_when_set():
    assert flag(pod_of({}), "--public-base-url") is None
    url = "https://t2i.example.com/api"
    assert flag(pod_of({"server": {"publicBaseURL": url}}), "--public-base-url") == url
