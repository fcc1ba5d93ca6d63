"""Two processes building the same preprocessed cache at once: one builds under the lock, the other waits and
reads whole cases only; nothing is preprocessed twice and no temporary is left behind."""

from __future__ import annotations

import json
import os
import subprocess
import time
import sys
from pathlib import Path

import numpy as np

import medsight

BUILDER = """
import json, sys
import numpy as np
from medsight.api import read_dataset
from medsight.jsonio import load_json
from medsight.data.volume_cache import PreprocessedCache

data, plan_path, root, go = sys.argv[1:5]
import os, time
_, dataset = read_dataset(data)
lines = []
cache = PreprocessedCache(dataset, load_json(plan_path), root)
open(go + "." + str(os.getpid()), "w").close()  # ready
while not os.path.exists(go):  # both builders start building together, once both have read the data
    time.sleep(0.001)
cache.ensure(range(len(dataset)), echo=lines.append)
sums = {case_id: [float(np.asarray(cache.get(i).image, dtype=np.float64).sum()), int(np.asarray(cache.get(i).label).sum())]
        for i, case_id in enumerate(dataset.case_ids)}
print(json.dumps({"lines": lines, "sums": sums}))
"""


def test_two_builders_at_once_build_each_case_once(make_folder, tmp_path):
    from medsight import api
    from medsight.data.volume_cache import PreprocessedCache

    data = make_folder(tmp_path / "data", cases=6, shape=(24, 24, 24))
    run = tmp_path / "run"
    plan = api.plan(data, run)
    root, go = tmp_path / "shared-cache", tmp_path / "go"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(medsight.__file__).parents[1])}
    builders = [subprocess.Popen([sys.executable, "-c", BUILDER, str(data), str(run / "plan.json"), str(root), str(go)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    deadline = time.time() + 120
    while len(list(tmp_path.glob("go.*"))) < 2 and time.time() < deadline:
        time.sleep(0.01)
    go.touch()
    results = []
    for builder in builders:
        out, err = builder.communicate(timeout=300)
        assert builder.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    built = [sum(int(line.split()[1]) for line in r["lines"] if line.startswith("preprocessing ")) for r in results]
    assert sorted(built) == [0, 6], results  # one builder did all six cases, the other none
    assert any(line.startswith("waiting for another process") for r in results for line in r["lines"])

    # what both read equals a cache built by one process alone
    _, dataset = api.read_dataset(data)
    alone = PreprocessedCache(dataset, plan, tmp_path / "alone-cache")
    alone.ensure(range(len(dataset)), echo=lambda line: None)
    for i, case_id in enumerate(dataset.case_ids):
        expected = [float(np.asarray(alone.get(i).image, dtype=np.float64).sum()), int(np.asarray(alone.get(i).label).sum())]
        for r in results:
            assert r["sums"][case_id] == expected
    folder = next(p for p in root.iterdir() if p.is_dir())
    assert not list(folder.glob(".*.tmp"))  # every file renamed into place
