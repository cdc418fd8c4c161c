#!/usr/bin/env bash
# Execute every solution notebook under the three settings the portability checks cover and keep
# each run's recorded results (build/spread/<setting>/results/*.json): this machine as it is,
# PyTorch's generic CPU kernels (a stand-in for another processor), and one thread. Then
# `python tools/spread.py` turns them into tests/expectations/*.toml with measured tolerances.
# The runs record without checking (COURSE_RECORD_ONLY=1): a changed chapter is re-measured
# against nothing, so its old expectations need not be moved aside.
#   tools/measure_spread.sh [notebook stems ...]     (default: all solutions)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# as the Makefile does: OpenMP threads sleep while they wait. Without it, a run beside any other
# busy process spins (chapter 02 took 12 CPU-minutes instead of 2); the values are the same.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
stems=("$@")
if [ ${#stems[@]} -eq 0 ]; then
  for f in solutions/*.ipynb; do stems+=("$(basename "$f" .ipynb)"); done
fi
run() {  # setting name, then env assignments
  local name=$1; shift
  local out=build/spread/$name
  mkdir -p "$out/executed" "$out/results"
  for stem in "${stems[@]}"; do
    local t0=$(date +%s)
    env "$@" COURSE_RECORD_ONLY=1 COURSE_RESULTS="$out/results" $PY -m jupyter nbconvert --to notebook --execute \
      --ExecutePreprocessor.timeout=1800 --output-dir "$out/executed" "solutions/$stem.ipynb" \
      >/dev/null 2>"$out/$stem.log" || { echo "[spread] $name $stem FAILED (see $out/$stem.log)"; continue; }
    echo "[spread] $name $stem $(( $(date +%s) - t0 )) s"
  done
}
run default COURSE_DUMMY=1
run generic-kernels ATEN_CPU_CAPABILITY=default
run one-thread OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
