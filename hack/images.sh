#!/usr/bin/env bash
# Build the two images WITHOUT Docker: a Debian base made with mmdebstrap, then `buildah bud` of
# Dockerfile.server (target api) and Dockerfile.operator, exported as OCI archives.
# Everything is cached outside the clone under ~/.cache/t2i-operator/images (buildah's own layer
# store included), keyed by the Dockerfile, the dependency set, the sources and the base: a second
# run with nothing changed takes seconds; a source-only change rebuilds only the last layers.
#
#   bash hack/images.sh                      # build (or reuse); prints a JSON summary last
#   bash hack/images.sh --load SOCKET        # ... and import both into that containerd (k8s.io)
#
# Environment:
#   T2I_TORCH_INDEX_URL  torch wheel index (default here: PyPI, since the PyTorch CPU index is
#                        unreachable on this machine kind; the Dockerfile's own default — used by
#                        `docker build` and releases — stays https://download.pytorch.org/whl/cpu)
#   T2I_DEBIAN_MIRROR    Debian mirror for the base (default: http://deb.debian.org/debian)
#   T2I_IMAGES_NO_APT=1  do not apt-get install missing tools; fail naming them instead
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
CACHE=${T2I_CACHE:-$HOME/.cache/t2i-operator}
IMG=$CACHE/images
TORCH_INDEX=${T2I_TORCH_INDEX_URL:-https://pypi.org/simple}
MIRROR=${T2I_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,passwd
LOAD=""
[ "${1:-}" = "--load" ] && LOAD=${2:?--load needs a containerd socket path}

log() { echo "[$(date -u +%H:%M:%S)] images: $*" >&2; }
t_start=$(date +%s)

# --- tools --------------------------------------------------------------------------------------
need=()
for t in buildah mmdebstrap; do command -v "$t" >/dev/null 2>&1 || need+=("$t"); done
if [ -n "$LOAD" ] && ! command -v ctr >/dev/null 2>&1; then need+=(containerd); fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "${T2I_IMAGES_NO_APT:-0}" = 1 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "images: missing tool(s): ${need[*]} (install the Debian packages of the same name)" >&2
    exit 2
  fi
  log "installing ${need[*]} with apt-get"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2 \
    || { echo "images: apt-get install ${need[*]} failed" >&2; exit 2; }
fi
mkdir -p "$IMG"
# buildah's layer store lives in the cache too (not /var/lib/containers): shared by runs, not clones.
BUILDAH=(buildah --root "$IMG/storage" --runroot "$IMG/run" --storage-driver overlay)
exec 9>"$IMG/.lock"
flock 9  # one build at a time per machine; a second caller waits, then finds the cache warm

hash_of() { sha256sum "$@" | sha256sum | cut -c1-12; }

# --- base: Debian bookworm + python3 + the host's CA bundle (so pip works in RUN steps) ---------
CA=/etc/ssl/certs/ca-certificates.crt
[ -f "$CA" ] || { echo "images: host CA bundle $CA not found" >&2; exit 2; }
BASE_KEY=$(printf '%s\n' "$SUITE" "$MIRROR" "$BASE_PACKAGES" "$(sha256sum "$CA")" | sha256sum | cut -c1-12)
BASE_REF=localhost/t2i-base:$BASE_KEY
if ! "${BUILDAH[@]}" inspect --type image "$BASE_REF" >/dev/null 2>&1; then
  log "base: mmdebstrap $SUITE ($BASE_PACKAGES)"
  tar=$IMG/base-$BASE_KEY.tar
  mmdebstrap --variant=minbase --include="$BASE_PACKAGES" \
    --customize-hook="mkdir -p \"\$1/usr/local/share/ca-certificates\"" \
    --customize-hook="copy-in $CA /usr/local/share/ca-certificates/" \
    --customize-hook="mv \"\$1/usr/local/share/ca-certificates/ca-certificates.crt\" \"\$1/usr/local/share/ca-certificates/host-bundle.crt\"" \
    --customize-hook="chroot \"\$1\" update-ca-certificates >/dev/null" \
    --customize-hook="printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > \"\$1/etc/pip.conf\"" \
    --customize-hook="rm -rf \"\$1/var/lib/apt/lists\"/* \"\$1/var/cache/apt\"/*.bin" \
    "$SUITE" "$tar" "$MIRROR" >&2
  ctr_id=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" add "$ctr_id" "$tar" / >/dev/null
  "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash "$ctr_id"
  "${BUILDAH[@]}" commit --quiet "$ctr_id" "$BASE_REF" >/dev/null
  "${BUILDAH[@]}" rm "$ctr_id" >/dev/null
  rm -f "$tar"
  log "base: $BASE_REF"
else
  log "base: cached $BASE_REF"
fi

# --- the two images -----------------------------------------------------------------------------
# Key: Dockerfile + dependency set (pyproject.toml) + sources + base + torch index.
src_files() {  # the files a COPY would take (tracked or new, not ignored); a tarball: all files
  if git rev-parse --git-dir >/dev/null 2>&1; then git ls-files -co --exclude-standard "$@"
  else find "$@" -type f -not -path '*/__pycache__/*'; fi | sort
}
build_one() {  # NAME DOCKERFILE TARGET SRC_DIRS...
  local name=$1 dockerfile=$2 target=$3; shift 3
  local key ref archive t0
  key=$(printf '%s\n' "$BASE_KEY" "$TORCH_INDEX" "$(hash_of "$dockerfile" pyproject.toml README.md $(src_files "$@"))" \
    | sha256sum | cut -c1-12)
  ref=localhost/t2i-$name:$key
  archive=$IMG/t2i-$name-$key.oci.tar
  if [ ! -f "$archive" ]; then
    t0=$(date +%s)
    log "$name: buildah bud -f $dockerfile ${target:+--target $target} (key $key)"
    "${BUILDAH[@]}" bud --layers --network host --isolation chroot --format oci \
      --build-arg "PYTHON_IMAGE=$BASE_REF" --build-arg "TORCH_INDEX_URL=$TORCH_INDEX" \
      ${target:+--target "$target"} -f "$dockerfile" -t "$ref" . >&2
    log "$name: exporting $archive"
    rm -f "$IMG/t2i-$name-"*.oci.tar  # one archive per image: the cache does not grow per edit
    # Uncompressed: gzip of the ~6 GB server image took ~5 min here; containerd reads it as is.
    "${BUILDAH[@]}" push --quiet --disable-compression "$ref" "oci-archive:$archive.tmp:$ref" >&2
    mv "$archive.tmp" "$archive"
    # Older builds of this image: remove them (their own top layers go; the untagged build
    # cache, with the dependency layers, stays), so the store does not grow ~6 GB per edit.
    "${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}' 2>/dev/null \
      | grep "^localhost/t2i-$name:" | grep -v "^$ref\$" \
      | xargs -r "${BUILDAH[@]}" rmi >/dev/null 2>&1 || true
    log "$name: built in $(( $(date +%s) - t0 )) s, archive $(du -h "$archive" | cut -f1)"
  else
    log "$name: cached $archive"
  fi
  printf '%s %s\n' "$ref" "$archive"
}
read -r SERVER_REF SERVER_TAR < <(build_one server Dockerfile.server api inference_server operator)
read -r OPERATOR_REF OPERATOR_TAR < <(build_one operator Dockerfile.operator "" operator)

if [ -n "$LOAD" ]; then
  for tar in "$SERVER_TAR" "$OPERATOR_TAR"; do
    log "loading $(basename "$tar") into containerd at $LOAD"
    ctr --address "$LOAD" -n k8s.io images import "$tar" >&2
  done
  # Earlier versions of our two images in that store: untag them (containerd's GC frees their
  # unshared content), so the store does not grow per edit either.
  ctr --address "$LOAD" -n k8s.io images ls -q \
    | grep -E '^localhost/t2i-(server|operator):' | grep -v -x -e "$SERVER_REF" -e "$OPERATOR_REF" \
    | xargs -r ctr --address "$LOAD" -n k8s.io images rm >/dev/null 2>&1 || true
fi
log "done in $(( $(date +%s) - t_start )) s"
printf '{"server": "%s", "server_archive": "%s", "operator": "%s", "operator_archive": "%s"}\n' \
  "$SERVER_REF" "$SERVER_TAR" "$OPERATOR_REF" "$OPERATOR_TAR"
