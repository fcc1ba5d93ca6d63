#!/bin/bash
# Peak resident memory of `medsight train --epochs 1` (plan, input cache build, one epoch, validation) on the
# IDRiD photographs as a class folder (benchmarks/classification/fundus_folder.py): 240 images, then 2,400 links.
# Usage: fundus_memory.sh OUT_DIR FOLDER...   (one torch thread; /usr/bin/time -v gives the peak RSS)
out=$1; shift
mkdir -p "$out"
for folder in "$@"; do
  name=$(basename "$folder")
  OMP_NUM_THREADS=1 /usr/bin/time -v python -m medsight train "$folder" --out "$out/run_$name" --epochs 1 \
    > "$out/train_$name.log" 2>&1 &
  pid=$!
  while kill -0 $pid 2>/dev/null; do  # the peak so far, in case a run has to be stopped
    child=$(pgrep -P $pid | head -1)
    [ -n "$child" ] && grep VmHWM /proc/$child/status 2>/dev/null | sed "s/^/$(date +%T) /" >> "$out/hwm_$name.log"
    sleep 10
  done
done
