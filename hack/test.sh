#!/usr/bin/env bash
# The project's one test command (`make test`, also what CI runs): sets up the venvs (ours and the
# IPEX one), the local control plane's binaries (kubelet included) and the two images (all cached
# under ~/.cache/t2i-operator), lints, then runs every test (tests/realnode needs root).
# Extra arguments go to pytest, e.g. `bash hack/test.sh tests/unit -k render`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
V=$(bash hack/venv.sh)
export T2I_VENV=$V PATH="$V/bin:$PATH"
# This checkout first (the overlay venv already puts it there; PYTHONPATH also covers tools run
# from the shared venv, such as a bare pytest).
export PYTHONPATH="$root/operator:$root${PYTHONPATH:+:$PYTHONPATH}"
bash hack/lint.sh
# The tutorial's IPEX recipe runs in its own cached venv (torch 2.8); one test drives it.
export T2I_IPEX_PYTHON=${T2I_IPEX_PYTHON:-$(bash hack/ipex-venv.sh)}
# jemalloc/tcmalloc (Debian packages, cached); one test preloads one into a bench worker.
export T2I_ALLOCATORS=${T2I_ALLOCATORS:-$(bash hack/allocators.sh)}
# Debian's chromium for the playground's browser tests (apt-get once; Playwright drives it).
export T2I_CHROMIUM=${T2I_CHROMIUM:-$(bash hack/chromium.sh)}
if [ -z "${T2I_E2E_KUBECONFIG:-}" ]; then
  # Cached: a no-op when the binaries for these versions exist. The kubelet is for tests/realnode.
  bash hack/cluster/build.sh --kubelet
  # KEDA's operator + metrics API server from Go modules, and Prometheus from Debian, for the
  # autoscaling tests (cached / installed once; the CRD-only e2e test needs just --crds).
  bash hack/keda.sh >/dev/null
  bash hack/prometheus.sh >/dev/null
fi
# The real-node tier's two images (buildah, cached; seconds when nothing changed). Built here so
# its progress is visible; the tier's fixture calls the same script and fails naming what is missing.
if [ $# -eq 0 ] || [[ " $* " == *realnode* ]]; then
  bash hack/images.sh >/dev/null
fi
set +e
"$V/bin/python" -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit "$rc"
