#!/usr/bin/env bash
# The GPU device check, one command, no network, under 10 minutes (bench/gpu_check.ts says what it measures).
# Runs from the repository (after scripts/setup.sh) or from the pack of bench/pack_gpu_check.sh, unpacked:
#
#   bash bench/gpu_check.sh [--quick] [--out FILE]       # in the repository; writes results/gpu_check.json
#   tar xzf deit-gpu-check.tar.gz && bash deit-gpu-check/gpu_check.sh   # from the pack; writes gpu_check.json
#
# What it sets up first:
# - deno: the repository's .tools/bin/deno, or the pack's deno.xz (unpacked with xz, or Python's lzma).
# - the Vulkan loader: the machine's libvulkan.so.1, else the pack's (Debian 12's libvulkan1).
# - NVIDIA's Vulkan driver: when no ICD manifest names it but the driver's libGLX_nvidia.so.0 is there, a
#   manifest pointing at it (VK_DRIVER_FILES); a compute-only container without the driver's graphics
#   libraries has no Vulkan on the GPU — the report says so (info.webgpu_adapter is null or a CPU adapter).
# - one GPU for the single-GPU phases (CUDA_VISIBLE_DEVICES / Mesa's device selection, lib/accel/gpu_select.ts), the
#   TensorFlow and CUDA caches large and persistent, TF_FORCE_GPU_ALLOW_GROWTH=true.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
if [ -f "$HERE/gpu_check.js" ]; then PACK=1 ROOT="$HERE"; else PACK=0 ROOT="$(cd "$HERE/.." && pwd)"; fi
cd "$ROOT"
say() { printf '[gpu_check] %s\n' "$*" >&2; }
QUICK="" OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK="--quick" ;;
    --out) OUT="$2"; shift ;;
    --out=*) OUT="${1#--out=}" ;;
    *) say "unknown argument $1"; exit 2 ;;
  esac
  shift
done
WORK="${TMPDIR:-/tmp}/deit-gpu-check.$$"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

# deno
if [ "$PACK" = 1 ]; then
  DENO="$WORK/deno"
  if command -v xz >/dev/null; then xz -dc "$HERE/deno.xz" >"$DENO"
  else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$HERE/deno.xz" "$DENO"
  fi
  chmod +x "$DENO"
  MAIN=("$HERE/gpu_check.js" --fixtures "$HERE/fixtures" --peer "$HERE/peer_torch.py" --out "${OUT:-$HERE/gpu_check.json}")
else
  DENO="$ROOT/.tools/bin/deno"
  [ -x "$DENO" ] || DENO="$(command -v deno)" || { say "no deno: run scripts/setup.sh first"; exit 1; }
  MAIN=("$ROOT/bench/gpu_check.ts" --out "${OUT:-$ROOT/results/gpu_check.json}")
fi
export DENO_NO_UPDATE_CHECK=1 DENO_DIR="$WORK/deno-dir" NO_COLOR=1

# Vulkan loader and NVIDIA's ICD
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 ' && [ -d "$HERE/vulkan" ]; then
  export LD_LIBRARY_PATH="$HERE/vulkan${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  say "Vulkan loader: the pack's ($HERE/vulkan)"
fi
icd_named=0
for d in /etc/vulkan/icd.d /usr/share/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
  ls "$d"/nvidia*.json >/dev/null 2>&1 && icd_named=1
done
if [ "$icd_named" = 0 ] && ldconfig -p 2>/dev/null | grep -q 'libGLX_nvidia.so.0 '; then
  printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "libGLX_nvidia.so.0", "api_version": "1.3"}}\n' \
    >"$WORK/nvidia_icd.json"
  export VK_DRIVER_FILES="$WORK/nvidia_icd.json"
  say "NVIDIA Vulkan ICD: a manifest for libGLX_nvidia.so.0 ($VK_DRIVER_FILES)"
fi
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  # The single-GPU phases on GPU 0 alone; the two-GPU phase sets each child's own selection.
  export VK_LOADER_DRIVERS_DISABLE='*lvp*'
  export CUDA_CACHE_MAXSIZE=4294967296 CUDA_CACHE_PATH="${CUDA_CACHE_PATH:-$HOME/.nv/ComputeCache}"
  export TF_FORCE_GPU_ALLOW_GROWTH=true
fi

say "deno $("$DENO" --version | head -1 | cut -d' ' -f2); $(nproc) cores; $(nvidia-smi -L 2>/dev/null | wc -l) NVIDIA GPU(s)"
timeout 570 "$DENO" run -A "${MAIN[@]}" $QUICK
rc=$?
[ $rc -eq 124 ] && say "stopped at the 570 s limit: the report keeps the phases that finished"
exit $rc
