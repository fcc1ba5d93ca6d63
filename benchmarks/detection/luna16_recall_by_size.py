"""Per-nodule recall by nodule size (< 7, 7-10, >= 10 mm) from a LUNA16 submission, by LUNA16's rule.

    python benchmarks/detection/luna16_recall_by_size.py DATA RUN/eval/test/predictions/submission.csv test

DATA: a LUNA16-layout folder with annotations.csv and medsight's splits_final.json. A prediction hits a nodule
when its centre is within the nodule's radius; recall is read at 1 and 8 false positives per scan (predictions
hitting no nodule, best scores first) and over all predictions.
"""
import csv, json, sys
from collections import defaultdict
import numpy as np

data, submission, split = sys.argv[1], sys.argv[2], sys.argv[3]
scans = json.load(open(f"{data}/splits_final.json", encoding="utf-8"))[0][split]
refs = defaultdict(list)
for r in csv.DictReader(open(f"{data}/annotations.csv", encoding="utf-8")):
    if r["seriesuid"] in scans:
        refs[r["seriesuid"]].append((np.array([float(r[k]) for k in ("coordX", "coordY", "coordZ")]), float(r["diameter_mm"])))
preds = [(r["seriesuid"], np.array([float(r[k]) for k in ("coordX", "coordY", "coordZ")]), float(r["probability"]))
         for r in csv.DictReader(open(submission, encoding="utf-8")) if r["seriesuid"] in scans]
preds.sort(key=lambda p: -p[2])
nodules = [(uid, k, d) for uid in refs for k, (c, d) in enumerate(refs[uid])]
hits_of = []  # per prediction: the nodules it hits
for uid, c, s in preds:
    hits_of.append([(uid, k) for k, (rc, d) in enumerate(refs.get(uid, [])) if np.sum((c - rc) ** 2) < (d / 2) ** 2])
buckets = {"<7": (0, 7), "7-10": (7, 10), ">=10": (10, 1e9)}
out = {"split": split, "scans": len(scans), "nodules": {b: sum(lo <= d < hi for _, _, d in nodules) for b, (lo, hi) in buckets.items()}}
for rate in (1, 8, None):
    found, fp = set(), 0
    for h in hits_of:
        if not h:
            fp += 1
            if rate is not None and fp > rate * len(scans):
                break
        found.update(h)
    key = f"recall@{rate}fp" if rate is not None else "recall_all"
    out[key] = {b: f"{sum((u, k) in found for u, k, d in nodules if lo <= d < hi)}/{sum(lo <= d < hi for _, _, d in nodules)}"
                for b, (lo, hi) in buckets.items()}
out["found_sizes_all"] = sorted(round(d, 1) for u, k, d in nodules if (u, k) in {x for h in hits_of for x in h})
out["predictions"] = len(preds)
print(json.dumps(out))
