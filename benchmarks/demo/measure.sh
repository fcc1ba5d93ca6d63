#!/usr/bin/env bash
# The demo as a user runs it, timed, with the machine's load before and after (the machine may be shared).
# usage: benchmarks/demo/measure.sh OUT [demo options]   (from the repository root, medsight importable)
set -euo pipefail
out=${1:?usage: measure.sh OUT [demo options]}; shift
echo "start $(date -Is)  nproc $(nproc)  OMP_NUM_THREADS ${THREADS:-2}  load: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
OMP_NUM_THREADS=${THREADS:-2} python -m medsight demo --out "$out" "$@"
echo "end $(date -Is)  wall $(( $(date +%s) - start )) s  load: $(cut -d' ' -f1-3 /proc/loadavg)"
