#!/usr/bin/env bash
# `make demo`: the main job end to end on an embedded default.
#   1. builds (or reuses) kube-apiserver/etcd/controller-manager/scheduler/kubectl/kwok,
#   2. starts a local control plane with fake g8i / TDX / ordinary nodes (kwok),
#   3. installs the CRD and RBAC, runs the operator (as its ServiceAccount, least privilege),
#   4. applies examples/bundled.yaml and waits for the Text2ImageService to be Ready,
#   5. starts the inference server locally on a generated tiny SDXL pipeline and sends the
#      tutorial's curl request, saving the PNG under ./demo-output/.
# What is simulated: kwok nodes run no containers, so the pods are "Running" without the server
# inside them; the server runs here as a local process, on a tiny random-weight model (the real
# stabilityai/sdxl-turbo weights cannot be downloaded here), so the PNG is noise, not a panda.
# Everything is torn down at the end; T2I_DEMO_KEEP=1 leaves it running and prints how to stop.
# REAL=1 (`make demo REAL=1`, root) runs the same path with real containers instead:
# hack/demo_real.py (images built here, a real kubelet node, the operator in a pod).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "${REAL:-0}" = 1 ]; then
  step "Python environment"
  V=$(bash hack/venv.sh)
  export PYTHONPATH="$root/operator:$root${PYTHONPATH:+:$PYTHONPATH}"
  step "Kubernetes binaries, kubelet included (cached under ~/.cache/t2i-operator/k8s-bin)"
  bash hack/cluster/build.sh --kubelet
  exec "$V/bin/python" hack/demo_real.py
fi

step "Python environment"
V=$(bash hack/venv.sh)
# This checkout wins over whatever clone the shared venv's editable install points at.
export PYTHONPATH="$root/operator:$root${PYTHONPATH:+:$PYTHONPATH}"
step "Kubernetes binaries (cached under ~/.cache/t2i-operator/k8s-bin)"
bash hack/cluster/build.sh

state=$(mktemp -d /tmp/t2i-demo.XXXXXX)
out=${T2I_DEMO_OUT:-$root/demo-output}
port=${T2I_DEMO_PORT:-5000}
mkdir -p "$out"
operator_pid="" server_pid=""
stop_pid() {  # SIGTERM a child we started and reap it; its exit status is not ours
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null || return 0
  wait "$1" 2>/dev/null || true
}
cleanup() {
  local status=$?
  if [ "${T2I_DEMO_KEEP:-0}" = 1 ]; then
    echo "Left running. Stop with: kill $operator_pid $server_pid; python3 hack/cluster/localcluster.py down --state-dir $state/cluster"
    exit "$status"
  fi
  step "Tearing down"
  stop_pid "$server_pid"
  stop_pid "$operator_pid"
  python3 hack/cluster/localcluster.py down --state-dir "$state/cluster" || true
  if [ "$status" -eq 0 ]; then rm -rf "$state"; else echo "demo failed (exit $status); logs are in $state" >&2; fi
  exit "$status"
}
trap cleanup EXIT

step "Local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok nodes)"
python3 hack/cluster/localcluster.py up --state-dir "$state/cluster" >/dev/null
export KUBECONFIG=$state/cluster/admin.kubeconfig
kubectl=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bin"] + "/kubectl")' "$state/cluster/info.json")
"$kubectl" get nodes -L node.kubernetes.io/instance-type -L nodepool-label

step "Installing the CRD and the operator's RBAC"
"$kubectl" apply -f crds/t2i.dev_text2imageservices.yaml
# Polled: `kubectl wait --for=condition=Established` errors out if it reads the CRD before the
# API server has written any condition.
for _ in $(seq 120); do
  "$kubectl" get crd text2imageservices.t2i.dev -o json | python3 -c '
import json, sys
conditions = json.load(sys.stdin).get("status", {}).get("conditions") or []
sys.exit(not any(c["type"] == "Established" and c["status"] == "True" for c in conditions))' && break
  sleep 0.5
done
"$kubectl" apply -f deploy/namespace.yaml -f deploy/rbac.yaml
until "$kubectl" -n t2i-system get serviceaccount t2i-operator >/dev/null 2>&1; do sleep 0.5; done

step "Running the operator as its ServiceAccount (only the shipped ClusterRole)"
token=$("$kubectl" -n t2i-system create token t2i-operator --duration=2h)
operator_kubeconfig=$state/operator.kubeconfig
cp "$KUBECONFIG" "$operator_kubeconfig"
KUBECONFIG=$operator_kubeconfig "$kubectl" config set-credentials t2i-operator --token="$token" >/dev/null
KUBECONFIG=$operator_kubeconfig "$kubectl" config set-context --current --user=t2i-operator >/dev/null
KUBECONFIG=$operator_kubeconfig "$V/bin/python" -m t2i_operator.main --liveness= \
  >"$state/operator.log" 2>&1 &
operator_pid=$!
echo "operator pid $operator_pid, log $state/operator.log"

step "Applying examples/bundled.yaml (the tutorial's Option 1 values.yaml)"
"$kubectl" apply -f examples/bundled.yaml
"$kubectl" wait --for=condition=Ready t2i/stable-diffusion-ipex --timeout=180s
"$kubectl" get t2i -o wide
"$kubectl" get deploy,svc,pods -o wide

step "Inference server, locally, on a generated tiny SDXL pipeline (simulated model)"
model=$state/models/stabilityai/sdxl-turbo
"$V/bin/python" -m inference_server.tiny_model "$model" 2>/dev/null
"$V/bin/t2i-server" --model-dir "$model" --port "$port" --host 127.0.0.1 \
  --output-dir "$state/sd" >"$state/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 240); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$state/server.log"; exit 1; }
  sleep 0.5
done
curl -sf "http://127.0.0.1:$port/readyz"; echo

step "The tutorial's request"
echo "curl -X POST http://127.0.0.1:$port/api/text2image -d '{\"prompt\": \"A panda listening to music with headphones. highly detailed, 8k.\", \"number\": 1}'"
response=$(curl -sf -X POST "http://127.0.0.1:$port/api/text2image" \
  -d '{"prompt": "A panda listening to music with headphones. highly detailed, 8k.", "number": 1}')
echo "$response" | "$V/bin/python" -m json.tool
url=$(echo "$response" | "$V/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["output"][0]["url"])')
curl -sf "$url" -o "$out/panda.png"
"$V/bin/python" -c 'import sys; from PIL import Image; im = Image.open(sys.argv[1]); print(f"saved {sys.argv[1]}: {im.format} {im.size[0]}x{im.size[1]}")' "$out/panda.png"
echo
echo "Simulated here: kwok nodes run no containers, and the model is a tiny random-weight SDXL"
echo "pipeline (the image is noise). On a real cluster the same resource runs the server image."
