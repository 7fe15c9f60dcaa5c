#!/usr/bin/env bash
# Fetch (or reuse) jemalloc and tcmalloc shared libraries for the allocator rows of the
# inference benchmark (`t2i-bench --compare eager eager+LIB`). Debian's packages, unpacked
# without root into the cache; pinned versions are the cache key. Prints the directory holding
# libjemalloc.so.2 and libtcmalloc_minimal.so.4 on stdout.
set -euo pipefail
cache=${T2I_CACHE:-$HOME/.cache/t2i-operator}
packages=(libjemalloc2=5.3.0-1 libtcmalloc-minimal4=2.10-1)
key=$(printf '%s\n' "${packages[@]}" | sha256sum | cut -c1-12)
dir="$cache/allocators-$key"
mkdir -p "$cache"
# Two callers at once (CI beside a benchmark) would delete each other's half-built copy:
# the second waits for the first, then reuses what it built.
exec 9>"$cache/.allocators.lock"
flock 9
if [ ! -f "$dir/.complete" ]; then
  command -v apt-get >/dev/null || { echo "allocators.sh: needs apt-get (Debian)" >&2; exit 1; }
  rm -rf "$dir" && mkdir -p "$dir/debs"
  (cd "$dir/debs" && apt-get download -q "${packages[@]}" >&2)
  for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
  mv "$dir"/root/usr/lib/x86_64-linux-gnu/lib{jemalloc.so.2,tcmalloc_minimal.so.4*} "$dir/"
  rm -rf "$dir/root" "$dir/debs"
  touch "$dir/.complete"
fi
echo "$dir"
