#!/usr/bin/env bash
# The project's main job, from a fresh machine: set-up, then `deno task reproduce` (arguments passed on).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.tools/bin:$PATH" DENO_NO_UPDATE_CHECK=1
deno task reproduce "$@"
