"""Cross-check medsight's classification figures with scikit-learn from the saved predictions:

    python benchmarks/classification/sklearn_check.py EVAL_DIR [EVAL_DIR ...]

EVAL_DIR is a folder `medsight evaluate` wrote (metrics.json, predictions/predictions.csv). Prints, per folder,
scikit-learn's AUC (binary, or macro one-vs-rest), argmax accuracy and, for more than two classes, quadratic
kappa beside medsight's metrics.json values.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, roc_auc_score


def check(folder: Path) -> dict:
    rows = list(csv.DictReader(open(folder / "predictions" / "predictions.csv", encoding="utf-8")))
    columns = [k for k in rows[0] if k.startswith("prob_")]
    probs = np.array([[float(r[k]) for k in columns] for r in rows])
    truth = np.array([int(r["true"]) for r in rows])
    auc = roc_auc_score(truth, probs[:, 1]) if probs.shape[1] == 2 else roc_auc_score(
        truth, probs, multi_class="ovr", average="macro")
    out = {"folder": str(folder), "sklearn_auc": auc, "sklearn_accuracy_argmax": accuracy_score(truth, probs.argmax(1))}
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    out["medsight_auc"] = metrics["metrics"]["auc"]
    out["medsight_accuracy_argmax"] = metrics["metrics_argmax"]["accuracy"]
    if probs.shape[1] > 2:
        out["sklearn_kappa_quadratic_argmax"] = cohen_kappa_score(truth, probs.argmax(1), weights="quadratic")
        out["medsight_kappa_quadratic_argmax"] = metrics["metrics_argmax"].get("kappa_quadratic")
    return out


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in check(Path(name)).items()}))
