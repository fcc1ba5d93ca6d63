#!/bin/sh
# Detection latency (benchmarks/deploy/latency.py) of the previous code and of this checkout, in turn, twice.
# BEFORE_SRC: the previous src/, e.g. `git archive c22531b src | tar -x -C /tmp/before` -> /tmp/before/src
set -e
BEFORE_SRC=${BEFORE_SRC:?set BEFORE_SRC to the previous src/ folder}
RUN=${RUN:-benchmarks/work/deploy/bccd_frcnn}
for round in 1 2; do
  for side in before after; do
    if [ $side = before ]; then SRC=$BEFORE_SRC; else SRC=$PWD/src; fi
    uptime
    PYTHONPATH=$SRC OMP_NUM_THREADS=1 python benchmarks/deploy/latency.py --detection-run "$RUN" --threads 1 \
      --images 16 --repeats 40 --warmup 5 --out benchmarks/speed/detection_ab/latency_detection_${side}_${round}.json
  done
done
uptime
