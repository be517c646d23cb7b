#!/usr/bin/env bash
# The flake hunt of docs/progress.md (issue 23): the server tiers N times with the pinned redis-py and N times with
# the newest, back to back, on a fresh clone, while a busy loop takes one core (a shared CI runner is loaded too).
#
#   bash bench/flake_hunt.sh [RUNS] [CLONE_DIR] [LOG_DIR]      # defaults: 3 /tmp/flake-hunt /tmp/flake-hunt-logs
#
# Each run: pytest's server tiers as make test runs them, then tests/leftover_processes.py. One line per run goes
# to LOG_DIR/summary (exit code, seconds, pytest's last line); the full output to LOG_DIR/<version>-<n>.log.
# Needs what make test needs (.ci/run installs it). Exit 1 if any run failed.
set -uo pipefail
runs=${1:-3}
clone=${2:-/tmp/flake-hunt}
logs=${3:-/tmp/flake-hunt-logs}
repo=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$clone" "$logs" && mkdir -p "$logs" && git clone -q "$repo" "$clone" && cd "$clone" || exit 2
make venv >/dev/null && make venv VENV=.venv-redis-latest >/dev/null || exit 2
newest=$(.venv/bin/pip index versions redis 2>/dev/null | sed -n 's/^redis (\(.*\))$/\1/p')
.venv-redis-latest/bin/pip install -q --disable-pip-version-check "redis==${newest:?no answer from the package index}"
# The busy loop must not carry this clone's marker: the leftover check would stop it as something a run left.
env -u VHC_CHECKOUT python3 -c 'while True: pass' &
hog=$!
trap 'kill $hog' EXIT
export PYTHONDONTWRITEBYTECODE= VHC_CHECKOUT="$clone" CI=true
failed=0
for venv in .venv .venv-redis-latest; do
  version=$("$venv/bin/python" -c 'import redis; print(redis.__version__)')
  for i in $(seq "$runs"); do
    log="$logs/redis-py-$version-$i.log"
    start=$SECONDS
    "$venv/bin/python" -m pytest -q -n 6 -m "integration or docker" --ignore=tests/unit -p no:cacheprovider >"$log" 2>&1
    code=$?
    "$venv/bin/python" tests/leftover_processes.py >>"$log" 2>&1 || code="$code, and processes were left running"
    [ "$code" = 0 ] || failed=1
    echo "redis-py $version run $i: exit $code in $((SECONDS - start)) s; $(grep -E '(passed|failed).* in ' "$log" | tail -1)" \
      | tee -a "$logs/summary"
  done
done
exit $failed
