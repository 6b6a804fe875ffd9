#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up, then format/lint/type checks and every test.
# Ends with one line "N passed, M failed" (the three static checks count as tests).
# Extra arguments go to `deno test` (e.g. a file or --filter NAME).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "set-up failed"; echo "0 passed, 1 failed"; exit 1; }
export PATH="$PWD/.tools/bin:$PATH" DENO_NO_UPDATE_CHECK=1 NO_COLOR=1

passed=0 failed=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok: $name"; else failed=$((failed + 1)); echo "FAILED: $name"; fi
}
check "deno fmt --check" deno fmt --check
check "deno lint" deno lint
check "deno check" deno check lib scripts tests bench configs

log=$(mktemp)
deno test -A --parallel "${@:-tests/}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -1)
rm -f "$log"
if [ -n "$summary" ]; then
  passed=$((passed + $(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")))
  failed=$((failed + $(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")))
else
  failed=$((failed + 1)) # the runner itself failed before reporting (e.g. a type error)
fi
[ "$status" -eq 0 ] || [ -n "$summary" ] || true
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
