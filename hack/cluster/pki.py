"""The local control plane's certificates and kubeconfigs, made with the openssl CLI (stdlib
only, like localcluster.py): the cluster CA, serving and client certs, the service-account key
pair, the front-proxy CA of the API aggregation layer, and kubeconfig files."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(d: Path, test_user: str, extra_ips: tuple[str, ...] = ()) -> None:
    """CA, apiserver serving cert, admin client cert, service-account key pair, and a token for
    `test_user` (a non-admin identity in the group t2i-test).

    `extra_ips`: more serving-cert SANs (the real node's bridge gateway, where its pods reach
    the apiserver)."""
    make_ca(d, "t2i-local-ca")
    exts = {
        "apiserver": "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc"
        + "".join(f",IP:{ip}" for ip in extra_ips)
        + "\nextendedKeyUsage=serverAuth\n",
        "admin": "extendedKeyUsage=clientAuth\n",
    }
    subjects = {"apiserver": "/CN=kube-apiserver", "admin": "/CN=admin/O=system:masters"}
    for name, subj in subjects.items():
        signed_cert(d, name, subj, exts[name])
    openssl("genrsa", "-out", str(d / "sa.key"), "2048")
    openssl("rsa", "-in", str(d / "sa.key"), "-pubout", "-out", str(d / "sa.pub"))
    token = os.urandom(16).hex()
    (d / "tokens.csv").write_text(f'{token},{test_user},{test_user},"t2i-test"\n')
    (d / "test-user.token").write_text(token)


def make_ca(d: Path, common_name: str) -> None:
    """<d>/ca.key + ca.crt: a self-signed CA (signed_cert(d, ...) then signs with it)."""
    d.mkdir(parents=True, exist_ok=True)
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        f"/CN={common_name}",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.crt"),
    )


# --- the API aggregation layer (issue 19: KEDA's external metrics API server) -------------------
FRONT_PROXY_CLIENT = "front-proxy-client"


def ensure_front_proxy_pki(pki: Path) -> Path:
    """The front-proxy CA and the apiserver's proxy client cert (<pki>/front-proxy/), kept apart
    from the cluster CA as upstream recommends; created once, also for older state dirs."""
    d = pki / "front-proxy"
    if not (d / f"{FRONT_PROXY_CLIENT}.crt").exists():
        make_ca(d, "t2i-front-proxy-ca")
        client_cert(d, FRONT_PROXY_CLIENT, f"/CN={FRONT_PROXY_CLIENT}")
    return d


def aggregation_flags(front_proxy: Path) -> list[str]:
    """kube-apiserver flags for APIService backends (metrics adapters). No kube-proxy runs here,
    so the aggregator dials the backend's endpoint (a pod IP) directly."""
    return [
        f"--requestheader-client-ca-file={front_proxy / 'ca.crt'}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={front_proxy / f'{FRONT_PROXY_CLIENT}.crt'}",
        f"--proxy-client-key-file={front_proxy / f'{FRONT_PROXY_CLIENT}.key'}",
        "--enable-aggregator-routing=true",
    ]


def signed_cert(d: Path, name: str, subject: str, extensions: str) -> None:
    """<name>.key/.crt for `subject`, signed by the local CA with the given x509 extensions."""
    (d / f"{name}.ext").write_text(extensions)
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        subject,
        "-keyout",
        str(d / f"{name}.key"),
        "-out",
        str(d / f"{name}.csr"),
    )
    openssl(
        "x509",
        "-req",
        "-in",
        str(d / f"{name}.csr"),
        "-CA",
        str(d / "ca.crt"),
        "-CAkey",
        str(d / "ca.key"),
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        str(d / f"{name}.ext"),
        "-out",
        str(d / f"{name}.crt"),
    )


def client_cert(d: Path, name: str, subject: str) -> None:
    """A client certificate signed by the local CA (e.g. a node identity for the kubelet)."""
    signed_cert(d, name, subject, "extendedKeyUsage=clientAuth\n")


def kubeconfig_text(server: str, ca: Path, user: dict[str, str]) -> str:
    """A kubeconfig as JSON (valid YAML), for a client cert or a token."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "t2i-local",
            "clusters": [
                {
                    "name": "t2i-local",
                    "cluster": {"server": server, "certificate-authority": str(ca)},
                }
            ],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "t2i-local", "context": {"cluster": "t2i-local", "user": "u"}}],
        },
        indent=1,
    )
