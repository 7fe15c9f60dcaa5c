"""The command lines of the local control plane's components (pure: paths and ports in, argv
out), so localcluster.py only starts processes and waits for them."""

from __future__ import annotations

from pathlib import Path

from hack.support import free_port

SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


def etcd(data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    return [
        "etcd",
        "--data-dir",
        str(data_dir),
        "--listen-client-urls",
        client,
        "--advertise-client-urls",
        client,
        "--listen-peer-urls",
        peer,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        f"default={peer}",
        "--unsafe-no-fsync",
        "--listen-metrics-urls",
        f"http://127.0.0.1:{free_port()}",
    ]


def apiserver(
    pki: Path,
    etcd_url: str,
    port: int,
    audit_policy: Path,
    audit_log: Path,
    aggregation: list[str],
) -> list[str]:
    return [
        "kube-apiserver",
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--token-auth-file={pki / 'tokens.csv'}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        # /16, not the default /24: the 500-CR benchmark creates 500 Services, and a /24
        # fails the 255th with "failed to allocate a serviceIP: range is full".
        "--service-cluster-ip-range=10.0.0.0/16",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        f"--audit-policy-file={audit_policy}",
        f"--audit-log-path={audit_log}",
        "--audit-log-maxage=1",
        "--audit-log-format=json",
        *aggregation,
    ]


def _control_loop(binary: str, kubeconfig: str) -> list[str]:
    """What the controller-manager and the scheduler share: one instance (no leader election),
    no serving port, and a raised client rate limit. The controller-manager's default (20 QPS,
    burst 30) is what bounds 500 CRs → 500 ReplicaSets + 500 pods + their status writes
    (measured 125 s to all Ready with it, the operator itself done creating children after
    ~21 s); the scheduler's default 50 QPS binds 500 pods no faster than 10 s."""
    return [
        binary,
        f"--kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        "--secure-port=0",
        "--kube-api-qps=100",
        "--kube-api-burst=200",
    ]


def controller_manager(pki: Path, kubeconfig: str) -> list[str]:
    return [
        *_control_loop("kube-controller-manager", kubeconfig),
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        "--use-service-account-credentials=false",
        "--controllers=*",
        # kwok renews fake nodes' leases from one process; on a loaded 2-core machine a
        # renewal can be late, and the default 50 s grace marks every node NotReady and
        # every pod unready (seen in the operator benchmark). Fake nodes never die.
        "--node-monitor-grace-period=10m",
    ]


def scheduler(kubeconfig: str) -> list[str]:
    return _control_loop("kube-scheduler", kubeconfig)


def kwok(kubeconfig: str, config: Path) -> list[str]:
    return [
        "kwok",
        f"--kubeconfig={kubeconfig}",
        "-c",
        str(config),
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--cidr=10.244.0.1/16",  # fake pod IPs: room for 500+ pods, apart from Services
        "--node-ip=10.0.0.1",
    ]
