#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine with Node.js/npm (nothing else installed by hand):
#   1. Deno (pinned) from npm into .tools/
#   2. the Debian packages the project uses (Jupyter, Fashion-MNIST, OpenBLAS, a font, the Vulkan loader and
#      Mesa's software adapter for the WebGPU tests) — all optional: without root it says what each would give
#   3. the npm dependencies of deno.json (from deno.lock)
#   4. the Deno Jupyter kernel (its kernelspec holds the absolute path of this clone's deno)
# Running it again does only what is missing. Prints where deno is.
set -euo pipefail
cd "$(dirname "$0")/.."

DENO_VERSION=2.9.6

say() { printf '[setup] %s\n' "$*" >&2; }

# 1. Deno --------------------------------------------------------------------------------------------
deno_bin=.tools/bin/deno
if ! { [ -x "$deno_bin" ] && "$deno_bin" --version 2>/dev/null | grep -q "^deno $DENO_VERSION "; }; then
  case "$(uname -m)" in
    x86_64) platform=linux-x64-glibc ;;
    aarch64 | arm64) platform=linux-arm64-glibc ;;
    *) say "unsupported machine $(uname -m)"; exit 1 ;;
  esac
  say "installing Deno $DENO_VERSION from npm into .tools/"
  mkdir -p .tools/bin
  [ -f .tools/package.json ] || echo '{"private": true}' >.tools/package.json
  # The deno package's postinstall only copies the binary, which we link ourselves.
  npm install --prefix .tools --no-audit --no-fund --loglevel=error "deno@$DENO_VERSION" >&2
  ln -sf "../node_modules/@deno/$platform/deno" "$deno_bin"
  "$deno_bin" --version | head -1 >&2
fi

# 2. Debian packages ----------------------------------------------------------------------------------
# Every one is optional: without root (or password-less sudo) set-up goes on and says, one line each, what is
# lost and how to supply it (e.g. on a cluster: the IDX files with --data_dir, an OpenBLAS with DEIT_BLAS).
declare -A LOST=(
  [jupyter-nbconvert]="notebooks cannot be run headless (pip install --user nbconvert nbclient ipykernel)"
  [python3-nbclient]="notebooks cannot be run headless (pip install --user nbclient)"
  [jupyter-client]="no Jupyter kernel client (pip install --user jupyter-client)"
  [python3-ipykernel]="no Jupyter kernel machinery (pip install --user ipykernel)"
  [dataset-fashion-mnist]="Fashion-MNIST runs need its four IDX .gz files: pass --data_dir DIR"
  [python3-sklearn]="the digits transfer runs need sklearn's digits.csv.gz: pass --data_dir DIR"
  [fonts-dejavu-core]="figures rendered to PNG have no text font (any TrueType font in ~/.fonts works)"
  [libopenblas0-pthread]="wasm matrix products use XNNPACK, several times slower (DEIT_BLAS=/path/libopenblas.so.0)"
  [wabt]="lib/accel/simd/kernels.wat cannot be reassembled (the committed kernels still run)"
  [mesa-vulkan-drivers]="no software WebGPU adapter: the WebGPU tests are skipped (a GPU's own Vulkan driver works)"
  [libvulkan1]="no Vulkan loader: WebGPU is unavailable (install the loader, or LD_LIBRARY_PATH to one)"
)
APT_PACKAGES=(jupyter-nbconvert python3-nbclient jupyter-client python3-ipykernel dataset-fashion-mnist python3-sklearn
  fonts-dejavu-core libopenblas0-pthread wabt mesa-vulkan-drivers libvulkan1)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="none"; fi
  fi
  if [ "$sudo" != "none" ] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${missing[*]}"
    if ! { $sudo apt-get update -qq >&2 &&
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; }; then
      say "apt-get failed; going on without: ${missing[*]}"
    fi
  else
    say "no root, password-less sudo or apt-get: Debian packages not installed (all optional)"
  fi
  for p in "${missing[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      say "without $p: ${LOST[$p]}"
  done
fi

# 3. npm dependencies of deno.json ----------------------------------------------------------------------
export PATH="$PWD/.tools/bin:$PATH"
export DENO_NO_UPDATE_CHECK=1
if [ ! -f node_modules/.deno/.setup-stamp ] || [ deno.lock -nt node_modules/.deno/.setup-stamp ]; then
  say "installing npm dependencies (deno install --frozen)"
  deno install --frozen --quiet >&2
  touch node_modules/.deno/.setup-stamp
fi

# 4. Deno Jupyter kernel (re-run every time: the kernelspec records this clone's deno path) ------------
if command -v jupyter >/dev/null; then
  deno jupyter --install --force >/dev/null 2>&1 || { say "deno jupyter --install failed"; exit 1; }
else
  say "no jupyter: the Deno kernel is not registered (the notebooks need it; the rest does not)"
fi

say "ready: $PWD/$deno_bin"
