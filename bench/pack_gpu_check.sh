#!/usr/bin/env bash
# Packs the GPU device check for a machine with no network (and at most 64 MiB of files carried along):
#   .cache/gpu_check/deit-gpu-check.tar.gz  — deno (xz), gpu_check.js (`deno bundle` of bench/gpu_check.ts: every
#   import inlined, no node_modules), gpu_check.sh, peer_torch.py, the reference fixtures, and Debian 12's Vulkan
#   loader (libvulkan1) for a machine without one.
# On the GPU machine: tar xzf deit-gpu-check.tar.gz && bash deit-gpu-check/gpu_check.sh  (writes gpu_check.json)
# Run after scripts/setup.sh; `deno bundle` fetches its bundler (esbuild) from npm the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/bin:$PATH" DENO_NO_UPDATE_CHECK=1
OUT=.cache/gpu_check
P="$OUT/deit-gpu-check"
FIXTURES=../shared/fixtures/reference
rm -rf "$P" && mkdir -p "$P/fixtures" "$P/vulkan"
deno bundle --quiet --platform=deno -o "$P/gpu_check.js" bench/gpu_check.ts
xz -T0 -6 -c "$(readlink -f .tools/bin/deno)" >"$P/deno.xz"
cp bench/gpu_check.sh bench/peer_torch.py "$P/"
cp "$FIXTURES"/* "$P/fixtures/"
tmp=$(mktemp -d)
if (cd "$tmp" && apt-get download -qq libvulkan1 >/dev/null 2>&1); then
  dpkg-deb -x "$tmp"/libvulkan1_*.deb "$tmp/x"
  cp -a "$tmp"/x/usr/lib/*/libvulkan.so.1* "$P/vulkan/"
elif [ -e /usr/lib/x86_64-linux-gnu/libvulkan.so.1 ]; then
  cp -aL /usr/lib/x86_64-linux-gnu/libvulkan.so.1 "$P/vulkan/"
else
  echo "[pack] no Vulkan loader to pack (the GPU machine must have libvulkan.so.1)" >&2
fi
rm -rf "$tmp"
tar -C "$OUT" -czf "$OUT/deit-gpu-check.tar.gz" deit-gpu-check
size=$(stat -c %s "$OUT/deit-gpu-check.tar.gz")
echo "[pack] $OUT/deit-gpu-check.tar.gz: $((size / 1024 / 1024)) MiB ($size bytes)"
[ "$size" -le $((64 * 1024 * 1024)) ] || { echo "[pack] larger than 64 MiB" >&2; exit 1; }
