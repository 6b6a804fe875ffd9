#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine with Node.js/npm (nothing else installed by hand):
#   1. Deno (pinned) from npm into .tools/
#   2. the Debian packages the project uses (Jupyter, Fashion-MNIST, a font for plots)
#   3. the npm dependencies of deno.json (from deno.lock)
#   4. the Deno Jupyter kernel (its kernelspec holds the absolute path of this clone's deno)
# Running it again does only what is missing. Prints where deno is.
set -euo pipefail
cd "$(dirname "$0")/.."

DENO_VERSION=2.9.6
APT_PACKAGES=(jupyter-nbconvert python3-nbclient jupyter-client python3-ipykernel dataset-fashion-mnist python3-sklearn
  fonts-dejavu-core libopenblas0-pthread wabt)

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
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
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
deno jupyter --install --force >/dev/null 2>&1 || { say "deno jupyter --install failed"; exit 1; }

say "ready: $PWD/$deno_bin"
