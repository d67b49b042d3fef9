#!/usr/bin/env bash
# Fresh clone -> the README's first command (`make run`), then an immediate second run.
# Prints: install time, first full DAG time, second (no-op) run time, then the first
# run's job-seconds by rule and the share spent importing (benchmarks/job_seconds.py).
# Usage: bash benchmarks/bench_pipeline.sh [repo-url-or-path]   (default: this repository)
set -euo pipefail
SRC="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
WORK="$(mktemp -d)"
git clone -q "$SRC" "$WORK/repo"
cd "$WORK/repo"
t0=$(date +%s.%N)
make install >/dev/null
t1=$(date +%s.%N)
PATH="$PWD/.venv/bin:$PATH" snakemake --cores 2 --quiet all >/dev/null 2>"$WORK/first.log"
t2=$(date +%s.%N)
PATH="$PWD/.venv/bin:$PATH" snakemake --cores 2 >/dev/null 2>"$WORK/second.log"
t3=$(date +%s.%N)
grep -q "Nothing to be done" "$WORK/second.log"
PATH="$PWD/.venv/bin:$PATH" dvc status --json > "$WORK/dvc-status.json"
printf 'install (make install):   %6.1f s\n' "$(echo "$t1 - $t0" | bc)"
printf 'first run (full DAG):     %6.1f s\n' "$(echo "$t2 - $t1" | bc)"
printf 'second run (nothing to do): %4.1f s\n' "$(echo "$t3 - $t2" | bc)"
printf 'dvc status after the run: %s\n' "$(cat "$WORK/dvc-status.json")"
PATH="$PWD/.venv/bin:$PATH" python benchmarks/job_seconds.py .
echo "work dir: $WORK"
