"""A real kubelet node beside the kwok nodes: containerd + runc + CNI bridge + kubelet, started
as processes with their own state directories (docs/real-node.md, notes/real-node.md).

Everything it creates carries a per-node suffix (bridge name, cgroup root, state dir, containerd
socket), so `down` can remove exactly that — containers, mounts, network namespaces, cgroups,
the bridge — and nothing of anyone else's. Stdlib only, like localcluster.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("T2I_CACHE", Path.home() / ".cache" / "t2i-operator"))
K8S_VERSION = os.environ.get("K8S_VERSION", "v1.35.4")
CNI_BIN = Path("/usr/lib/cni")
# Tests opt in with a toleration for this taint; nothing else is scheduled on the real node.
TAINT_KEY = "t2i.dev/real-node"
NODE_NAME = "real-node-0"
INSTANCE_TYPE = "ecs.g8i.8xlarge"
APT_PACKAGES = {
    "containerd": "containerd",
    "runc": "runc",
    "ctr": "containerd",
    str(CNI_BIN / "bridge"): "containernetworking-plugins",
    "gcc": "gcc",
    "ip": "iproute2",
}


def log(msg: str) -> None:
    print(
        f"[{time.strftime('%H:%M:%S')}] real-node: {msg}", flush=True, file=__import__("sys").stderr
    )


def ensure_packages() -> None:
    """apt-get install containerd, runc, CNI plugins, gcc when missing; else fail naming them."""
    missing = sorted({pkg for tool, pkg in APT_PACKAGES.items() if not _have(tool)})
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"real node: missing Debian packages {missing} (need root + apt-get)")
    log(f"apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    r = subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env, capture_output=True)
    still = sorted({pkg for tool, pkg in APT_PACKAGES.items() if not _have(tool)})
    if r.returncode or still:
        raise RuntimeError(
            f"real node: apt-get install {still or missing} failed: {r.stderr[-800:]!r}"
        )


def _have(tool: str) -> bool:
    return Path(tool).exists() if tool.startswith("/") else shutil.which(tool) is not None


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 under 10.246.0.0/16 that no route on this machine uses yet (T2I_REAL_NODE_SUBNET
    overrides): two sessions on one machine get two bridges that do not clash."""
    if os.environ.get("T2I_REAL_NODE_SUBNET"):
        return ipaddress.ip_network(os.environ["T2I_REAL_NODE_SUBNET"])
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    used = [ipaddress.ip_network(w, strict=False) for w in routes.split() if "/" in w]
    for net in ipaddress.ip_network("10.246.0.0/16").subnets(new_prefix=24):
        if net.network_address.packed[2] and not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("real node: no free /24 under 10.246.0.0/16 for the pod network")


# ---- the pause image, from its C source -----------------------------------------------------
def pause_image() -> tuple[str, Path]:
    """Build build/pause/linux/pause.c (from the kubernetes module) statically with gcc and wrap
    it in a one-layer OCI archive. Cached by the source's hash. Returns (ref, archive)."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{K8S_VERSION}"],
        check=True,
        capture_output=True,
        text=True,
        cwd="/tmp",
    ).stdout
    src = Path(json.loads(out)["Dir"]) / "build" / "pause" / "linux" / "pause.c"
    key = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    ref = f"localhost/t2i-pause:{key}"
    archive = CACHE / "pause" / f"pause-{key}.oci.tar"
    if archive.exists():
        return ref, archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    binary = archive.parent / f"pause-{key}"
    subprocess.run(
        ["gcc", "-Os", "-Wall", "-static", f"-DVERSION={K8S_VERSION}", "-o", str(binary), str(src)],
        check=True,
    )
    tmp = archive.with_suffix(".tmp")
    _write_oci_archive(tmp, ref, {"pause": binary.read_bytes()}, entrypoint=["/pause"])
    tmp.rename(archive)
    return ref, archive


def _write_oci_archive(
    path: Path, ref: str, files: dict[str, bytes], entrypoint: list[str]
) -> None:
    """A minimal OCI image layout tarball (one uncompressed layer) that `ctr import` accepts."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            t.addfile(info, io.BytesIO(data))
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    layer_desc = blob(layer.getvalue())
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
    }
    cfg = blob(json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer_desc}],
    }
    man = blob(json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **man,
                "annotations": {"org.opencontainers.image.ref.name": ref},
            }
        ],
    }
    with tarfile.open(path, "w") as t:
        entries = {
            "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
            "index.json": json.dumps(index).encode(),
        }
        entries.update({f"blobs/sha256/{d.split(':')[1]}": b for d, b in blobs.items()})
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


# ---- configuration files --------------------------------------------------------------------
def containerd_config(d: Path, root: Path, sandbox_image: str, cni_conf: Path) -> str:
    """containerd 1.6 config (version 2): own root/state/socket; the two sandbox fixes."""
    return f"""version = 2
root = "{root}"
state = "{d}/state"
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # The sandbox lacks CAP_SYS_RESOURCE: a negative oom_score_adj cannot be written.
  restrict_oom_score_adj = true
  # Pods' network namespaces under our state dir, not /var/run/netns: found and removed by path.
  netns_mounts_under_state_dir = true
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d}/runc"
"""


def cni_conflist(bridge: str, subnet: ipaddress.IPv4Network, ipam_dir: Path) -> str:
    gateway = next(subnet.hosts())
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": f"t2i-{bridge}",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": True,
                    "ipMasq": False,  # pods here never leave the machine: no NAT rules to clean
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": str(subnet), "gateway": str(gateway)}]],
                        "dataDir": str(ipam_dir),
                    },
                }
            ],
        },
        indent=1,
    )


def kubelet_config(d: Path, sock: Path, port: int, cgroup_root: str) -> dict:
    """KubeletConfiguration for a test node on cgroup v1 + cgroupfs, nothing on shared ports."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": port,
        "readOnlyPort": 0,
        "healthzPort": 0,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "failCgroupV1": False,  # 1.35 refuses cgroup v1 otherwise; this machine kind is v1
        "containerRuntimeEndpoint": f"unix://{sock}",
        "podLogsDir": str(d / "pod-logs"),
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "failSwapOn": False,
        "enforceNodeAllocatable": [],
        "evictionHard": {},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "resolvConf": "",
        "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "shutdownGracePeriod": "0s",
    }


@dataclass
class RealNode:
    """One kubelet node. `cluster` is the LocalCluster it joins (its PKI and process table)."""

    cluster: object
    subnet: ipaddress.IPv4Network
    name: str = NODE_NAME

    @property
    def dir(self) -> Path:
        return self.cluster.state / "node"

    @property
    def suffix(self) -> str:
        return hashlib.sha256(str(self.cluster.state).encode()).hexdigest()[:8]

    @property
    def bridge(self) -> str:
        return f"t2i{self.suffix}"

    @property
    def cgroup_root(self) -> str:
        return f"/t2i-{self.suffix}"

    @property
    def gateway(self) -> str:
        return str(next(self.subnet.hosts()))

    @property
    def sock(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    @property
    def pod_logs(self) -> Path:
        return self.dir / "pod-logs"

    def ctr(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(
            ["ctr", "--address", str(self.sock), "-n", "k8s.io", *args],
            capture_output=True,
            text=True,
        )
        if check and r.returncode:
            raise RuntimeError(f"ctr {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    # ---- up --------------------------------------------------------------------------------
    def up(self, bin_dir: Path, api_port: int, timeout: float = 120) -> None:
        """containerd → pause image → bridge + apiserver forwarder → kubelet → node Ready."""
        from localcluster import free_port, wait_for  # same directory; stdlib-only sibling

        c = self.cluster
        for sub in ("containerd", "cni", "cni-ipam", "kubelet", "pod-logs"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        pause_ref, pause_tar = pause_image()
        root, lock_fd = _image_store(self.dir / "containerd")
        (self.dir / "containerd" / "config.toml").write_text(
            containerd_config(self.dir / "containerd", root, pause_ref, self.dir / "cni")
        )
        (self.dir / "cni" / "10-t2i.conflist").write_text(
            cni_conflist(self.bridge, self.subnet, self.dir / "cni-ipam")
        )
        # The bridge exists before the first pod so the apiserver forwarder can bind its address.
        _ip("link", "add", self.bridge, "type", "bridge")
        (self.dir / "bridge").write_text(self.bridge)
        _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        c._spawn_cmd(
            "containerd",
            ["containerd", "--config", str(self.dir / "containerd" / "config.toml")],
            pass_fds=(lock_fd,) if lock_fd is not None else (),
        )
        if lock_fd is not None:
            os.close(lock_fd)  # containerd (and its shims) now hold the store's lock
        wait_for(
            lambda: c._alive("containerd") and self.sock.exists() and self.ctr("version"),
            60,
            "containerd socket",
        )
        self.load_image(pause_tar, pause_ref)
        # Pods reach the apiserver (bound to 127.0.0.1) at the bridge gateway: a TCP forwarder
        # stands in for kube-proxy's Service DNAT (there is none here). See docs/real-node.md.
        self.api_port = free_port_on(self.gateway)
        c._spawn_cmd(
            "apiserver-forwarder",
            [
                sys.executable,
                str(Path(__file__).with_name("forward.py")),
                self.gateway,
                str(self.api_port),
                str(api_port),
            ],
        )
        _make_cgroups(self.cgroup_root)  # the kubelet refuses a cgroupRoot that does not exist
        node_kc = self.dir / "kubelet.kubeconfig"
        node_kc.write_text(c.node_kubeconfig(self.name))
        cfg = self.dir / "kubelet-config.json"
        cfg.write_text(
            json.dumps(kubelet_config(self.dir, self.sock, free_port(), self.cgroup_root))
        )
        c._spawn_cmd(
            "kubelet",
            [
                str(bin_dir / "kubelet"),
                f"--config={cfg}",
                f"--kubeconfig={node_kc}",
                f"--hostname-override={self.name}",
                f"--root-dir={self.dir / 'kubelet'}",
                f"--cert-dir={self.dir / 'kubelet' / 'pki'}",
                f"--node-labels=node.kubernetes.io/instance-type={INSTANCE_TYPE},{TAINT_KEY}=true",
                "--v=2",
            ],
        )

        def ready() -> bool:
            c._alive("kubelet")
            c._alive("containerd")
            st = json.loads(c.kubectl_run("get", "node", self.name, "-o", "json"))["status"]
            return any(x["type"] == "Ready" and x["status"] == "True" for x in st["conditions"])

        wait_for(ready, timeout, f"node {self.name} Ready")
        log(
            f"{self.name} Ready (pods on {self.subnet}, apiserver for pods at "
            f"{self.gateway}:{self.api_port})"
        )

    def load_image(self, archive: Path, ref: str) -> None:
        """Import an OCI archive (hack/images.sh) into this node's containerd, unless the shared
        image store already has `ref`; older tags of the same image are removed (GC'd)."""
        repo = ref.rsplit(":", 1)[0]
        present = self.ctr("images", "ls", "-q").split()
        if ref not in present:
            t0 = time.monotonic()
            self.ctr("images", "import", str(archive))
            log(f"imported {ref} in {time.monotonic() - t0:.0f}s")
        for old in present:
            if old.startswith(repo + ":") and old != ref:
                self.ctr("images", "rm", old, check=False)

    # ---- down ------------------------------------------------------------------------------
    def drain(self, timeout: float = 60) -> None:
        """Delete every pod bound to this node and wait for the kubelet to stop them (CNI DEL
        removes their network namespaces). Called while the kubelet still runs."""
        with contextlib.suppress(Exception):
            self._drain_pods(timeout)
        with contextlib.suppress(Exception):  # what the kubelet did not remove in time
            for cid in self.ctr("containers", "ls", "-q").split():
                self.ctr("tasks", "kill", "-s", "SIGKILL", cid, check=False)
                self.ctr("tasks", "rm", "-f", cid, check=False)
                self.ctr("containers", "rm", cid, check=False)
            left = self.ctr("containers", "ls", "-q").split()
            (self.dir / "containers-left.txt").write_text("\n".join(left))

    def _drain_pods(self, timeout: float) -> None:
        from localcluster import wait_for

        c = self.cluster
        on_node = f"--field-selector=spec.nodeName={self.name}"
        c.kubectl_run("cordon", self.name)  # else the pods' controllers put new ones here
        c.kubectl_run("delete", "pods", "-A", on_node, "--wait=false", "--grace-period=5")
        wait_for(
            lambda: (
                not json.loads(c.kubectl_run("get", "pods", "-A", on_node, "-o", "json"))["items"]
            ),
            timeout,
            f"pods on {self.name} to terminate",
        )

    def cleanup(self) -> None:
        """After the processes are stopped: remove what they leave behind, ours only."""
        state = self.dir
        _kill_matching(str(self.sock))  # containerd-shim processes of this containerd
        for netns in _our_netns(state / "containerd"):
            subprocess.run(["umount", netns], capture_output=True)
            Path(netns).unlink(missing_ok=True)
        for mnt in sorted(_mounts_under(state), key=len, reverse=True):
            subprocess.run(["umount", "-l", mnt], capture_output=True)
        _rm_cgroups(self.cgroup_root)
        bridge_file = state / "bridge"
        if bridge_file.exists():
            subprocess.run(["ip", "link", "del", bridge_file.read_text()], capture_output=True)
            bridge_file.unlink()

    def leftovers(self) -> list[str]:
        """What `cleanup` must have removed: a non-empty list names what is left."""
        left = [f"mount {m}" for m in _mounts_under(self.dir)]
        recorded = self.dir / "containers-left.txt"
        if recorded.exists():
            left += [f"container {x}" for x in recorded.read_text().split()]
        left += [f"netns {n}" for n in _our_netns(self.dir / "containerd")]
        left += [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob(f"*{self.cgroup_root}")]
        left += [f"process {p}" for p in _pids_matching(str(self.sock))]
        if subprocess.run(["ip", "link", "show", self.bridge], capture_output=True).returncode == 0:
            left.append(f"bridge {self.bridge}")
        return left


def _image_store(containerd_dir: Path) -> tuple[Path, int | None]:
    """containerd's root (images, snapshots): the machine-wide one under the cache when no other
    real node uses it — imported images survive the session, so a 6 GB server image is imported
    once per version, not per run — else a fresh one in the state dir. Returns (root, lock fd):
    the fd's flock is inherited by containerd, so the store stays locked while it runs."""
    import fcntl

    shared = CACHE / "containerd"
    shared.mkdir(parents=True, exist_ok=True)
    fd = os.open(shared / "root.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        log("the shared image store is in use by another real node: using a fresh one (slow)")
        return containerd_dir / "root", None
    return shared / "root", fd


def free_port_on(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


def _mounts_under(d: Path) -> list[str]:
    prefix = str(d.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        points = [ln.split()[1].replace("\\040", " ") for ln in f]
    return [p for p in points if p.startswith(prefix)]


def _our_netns(containerd_dir: Path) -> list[str]:
    """Network namespaces of this containerd's sandboxes (netns_mounts_under_state_dir)."""
    d = containerd_dir / "state" / "io.containerd.grpc.v1.cri" / "netns"
    return sorted(str(p) for p in d.iterdir()) if d.is_dir() else []


def _pids_matching(needle: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError):
                if needle.encode() in (p / "cmdline").read_bytes():
                    pids.append(int(p.name))
    return [p for p in pids if p != os.getpid()]


def _kill_matching(needle: str) -> None:
    import signal

    for pid in _pids_matching(needle):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _make_cgroups(root: str) -> None:
    """mkdir the node's cgroup root in every hierarchy (v1 controllers, v1 name=systemd, v2)."""
    for h in Path("/sys/fs/cgroup").iterdir():
        if h.is_symlink() or not h.is_dir():
            continue  # cpu → cpu,cpuacct: one directory, reached through the real name
        d = h / root.lstrip("/")
        try:
            d.mkdir(exist_ok=True)
        except OSError as e:
            log(f"cannot create cgroup {d}: {e}")
            continue
        for f in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset: a new cgroup starts empty
            if (d / f).exists() and not (d / f).read_text().strip():
                (d / f).write_text((h / f).read_text())


def _rm_cgroups(root: str) -> None:
    """rmdir the node's cgroup tree in every v1 hierarchy (and v2), deepest first; first kill
    anything still in it (pods' processes are ours)."""
    import signal

    for top in Path("/sys/fs/cgroup").glob(f"*{root}"):
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts))
        for d in [top, *dirs]:
            with contextlib.suppress(OSError):
                for pid in (d / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
        for d in [*reversed(dirs), top]:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
