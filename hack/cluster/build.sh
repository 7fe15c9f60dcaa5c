#!/usr/bin/env bash
# Build the local control plane's binaries from upstream Go modules (no Docker, no downloads
# other than the Go module proxy) into a cache outside the clone, keyed by versions.
# Prints the bin directory on the last line of stdout. Skips when the cache is complete.
#   bash hack/cluster/build.sh             # etcd, kube-apiserver, controller-manager, scheduler,
#                                          # kubectl, kwok (marker .complete)
#   bash hack/cluster/build.sh --kubelet   # ... and kubelet (the real node; marker
#                                          # .kubelet-complete, added to the same directory
#                                          # without rebuilding the others)
set -euo pipefail
WITH_KUBELET=0
[[ "${1:-}" == "--kubelet" ]] && WITH_KUBELET=1

K8S_VERSION=${K8S_VERSION:-v1.35.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
CACHE=${T2I_CACHE:-$HOME/.cache/t2i-operator}
KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}"
OUT="$CACHE/k8s-bin/$KEY"
MARKER="$OUT/.complete"

log() { echo "[$(date -u +%H:%M:%S)] build: $*" >&2; }

KUBELET_MARKER="$OUT/.kubelet-complete"
done_already() { [[ -f "$MARKER" ]] && { [[ $WITH_KUBELET == 0 ]] || [[ -f "$KUBELET_MARKER" ]]; }; }
if done_already; then
  log "cache complete: $OUT"
  echo "$OUT"
  exit 0
fi
mkdir -p "$CACHE/k8s-bin"
exec 9>"$CACHE/k8s-bin/.lock"
flock 9  # a concurrent caller waits for this build instead of starting the same one
if done_already; then
  log "cache completed by another build: $OUT"
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null 2>&1 || {
  echo "build: 'go' not found on PATH (need Go >= 1.26.0 to build etcd $ETCD_VERSION and kwok $KWOK_VERSION)" >&2
  exit 2
}
log "go: $(go version)"

mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/t2i-k8s-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod

fetch() {  # go mod download -json MOD@VER → print the JSON; clear error on proxy failure
  local json
  if ! json=$(cd "$WORK" && go mod download -json "$1" 2>&1); then
    echo "build: could not download $1 from the Go module proxy ($(go env GOPROXY)):" >&2
    echo "$json" >&2
    exit 3
  fi
  echo "$json"
}

# --- kubernetes (consumer module with the generated replace block) ---------------------------
K8S_MINOR=${K8S_VERSION#v1.}; K8S_MINOR=${K8S_MINOR%%.*}
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
mkdir -p "$WORK/k8s"
(cd "$WORK/k8s" && go mod init t2i-k8s-build >/dev/null 2>&1)
log "resolving k8s.io/kubernetes@$K8S_VERSION"
GOMOD=$(fetch "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
{
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo "replace ("
  grep -E '^\s*k8s.io/[a-z0-9-]+ => ./staging' "$GOMOD" | awk -v v="$STAGING_VERSION" '{print "\t"$1" => "$1" "v}'
  echo ")"
} >> "$WORK/k8s/go.mod"
cat > "$WORK/k8s/tools.go" <<'G'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
G
log "go mod tidy (k8s consumer module)"
(cd "$WORK/k8s" && go mod tidy) || { echo "build: go mod tidy failed (module proxy reachable?)" >&2; exit 3; }
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
  LDFLAGS+=" -X $pkg.gitTreeState=clean"
done
build_k8s() {
  log "building $1 $K8S_VERSION"
  (cd "$WORK/k8s" && go build -ldflags "$LDFLAGS" -o "$OUT/$1" "k8s.io/kubernetes/cmd/$1")
}
if [[ -f "$MARKER" ]]; then  # only the kubelet is missing: build it alone
  build_k8s kubelet
  echo "$KEY" > "$KUBELET_MARKER"
  log "done: $OUT"
  echo "$OUT"
  exit 0
fi
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build_k8s "$cmd"
done

# --- etcd ---------------------------------------------------------------------------------------
mkdir -p "$WORK/etcd"
(cd "$WORK/etcd" && go mod init t2i-etcd-build >/dev/null 2>&1)
log "building etcd $ETCD_VERSION"
(cd "$WORK/etcd" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1) \
  || { echo "build: could not fetch go.etcd.io/etcd/server/v3@$ETCD_VERSION from the module proxy" >&2; exit 3; }
(cd "$WORK/etcd" && go build -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3)

# --- kwok + its Stage manifests -----------------------------------------------------------------
log "building kwok $KWOK_VERSION"
GOBIN="$OUT" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" \
  || { echo "build: go install sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION failed (module proxy reachable?)" >&2; exit 3; }
KWOK_DIR=$(fetch "sigs.k8s.io/kwok@$KWOK_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
: > "$OUT/kwok.yaml"
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
         pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  { echo "---"; cat "$KWOK_DIR/kustomize/stage/$f"; } >> "$OUT/kwok.yaml"
done

for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok; do
  [[ -x "$OUT/$b" ]] || { echo "build: $b missing after build" >&2; exit 4; }
done
echo "$KEY" > "$MARKER"
if [[ $WITH_KUBELET == 1 ]]; then
  build_k8s kubelet
  echo "$KEY" > "$KUBELET_MARKER"
fi
log "done: $OUT"
echo "$OUT"
