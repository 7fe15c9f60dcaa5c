#!/usr/bin/env bash
# KEDA from the Go module proxy (no images, no other downloads), cached outside the clone and
# keyed by version. Prints the cache directory on the last line of stdout.
#   bash hack/keda.sh --crds   # KEDA's CRDs only (seconds): <dir>/crds/*.yaml (marker .crds)
#   bash hack/keda.sh          # ... and the operator + metrics adapter, static binaries:
#                              # <dir>/bin/keda-operator, <dir>/bin/keda-adapter (marker .complete)
# Why a consumer module: KEDA's go.mod has a replace line, so `go install ...@version` is refused
# (see docs/operations.md, "KEDA from Go modules"). The module cache lives under the same cache
# (GOMODCACHE) so a second machine-warm run needs no proxy at all. Cold: ~6 min on 2 vCPUs.
set -euo pipefail
CRDS_ONLY=0
[[ "${1:-}" == "--crds" ]] && CRDS_ONLY=1

KEDA_VERSION=${KEDA_VERSION:-v2.21.0}
CACHE=${T2I_CACHE:-$HOME/.cache/t2i-operator}
OUT="$CACHE/keda-$KEDA_VERSION"
export GOMODCACHE=${T2I_GOMODCACHE:-$CACHE/go-mod}
export CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { echo "[$(date -u +%H:%M:%S)] keda: $*" >&2; }
done_already() { [[ -f "$OUT/.crds" ]] && { [[ $CRDS_ONLY == 1 ]] || [[ -f "$OUT/.complete" ]]; }; }
if done_already; then
  log "cache complete: $OUT"
  echo "$OUT"
  exit 0
fi
mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9  # a concurrent caller waits for this build instead of starting the same one
if done_already; then
  log "cache completed by another build: $OUT"
  echo "$OUT"
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "keda: 'go' not found on PATH (need Go >= 1.26)" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/t2i-keda-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
MOD="github.com/kedacore/keda/v2"
log "resolving $MOD@$KEDA_VERSION (GOMODCACHE=$GOMODCACHE)"
(cd "$WORK" && go mod init t2i-keda-build >/dev/null 2>&1)
if ! JSON=$(cd "$WORK" && go mod download -json "$MOD@$KEDA_VERSION" 2>&1); then
  echo "keda: could not download $MOD@$KEDA_VERSION from the Go module proxy ($(go env GOPROXY)):" >&2
  echo "$JSON" >&2
  exit 3
fi
DIR=$(echo "$JSON" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
GOMOD=$(echo "$JSON" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')

if [[ ! -f "$OUT/.crds" ]]; then
  mkdir -p "$OUT/crds"
  for f in "$DIR"/config/crd/bases/*.yaml; do install -m 0644 "$f" "$OUT/crds/"; done
  echo "$KEDA_VERSION" > "$OUT/.crds"
  log "CRDs: $(ls "$OUT/crds" | tr '\n' ' ')"
fi
if [[ $CRDS_ONLY == 1 ]]; then
  echo "$OUT"
  exit 0
fi

{
  echo "require $MOD $KEDA_VERSION"
  # KEDA's own one-line replace/exclude directives (today: nexus-proto-annotations, go-chi),
  # copied as they are: a consumer module must repeat them.
  grep -E '^(replace|exclude) [^(]' "$GOMOD" || true
} >> "$WORK/go.mod"
cat > "$WORK/tools.go" <<'G'
//go:build tools

package tools

import (
	_ "github.com/kedacore/keda/v2/cmd/adapter"
	_ "github.com/kedacore/keda/v2/cmd/operator"
)
G
log "go mod tidy (consumer module)"
(cd "$WORK" && go mod tidy) || { echo "keda: go mod tidy failed (module proxy reachable?)" >&2; exit 3; }
mkdir -p "$OUT/bin"
LDFLAGS="-s -w -X github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION#v}"
for cmd in operator adapter; do
  log "building keda-$cmd $KEDA_VERSION"
  (cd "$WORK" && go build -ldflags "$LDFLAGS" -o "$OUT/bin/keda-$cmd" "$MOD/cmd/$cmd")
done
for b in keda-operator keda-adapter; do
  [[ -x "$OUT/bin/$b" ]] || { echo "keda: $b missing after build" >&2; exit 4; }
done
echo "$KEDA_VERSION" > "$OUT/.complete"
log "done: $OUT"
echo "$OUT"
