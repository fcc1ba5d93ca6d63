"""Smoke test on real CT: Lung-PET-CT-Dx subject A0002, train on one reconstruction, predict the other.

The study holds one chest CT reconstructed twice (kernels B40f and B70f). Each series is read in HU with its
geometry (medsight.io.slice_boxes), its per-slice tumour boxes joined into a 3D box, and written as an
nnDetection raw folder (B40f in imagesTr, B70f in imagesTs), which medsight plans in millimetres. One patient
is not a benchmark: this shows the real-DICOM path works end to end, nothing about accuracy.

    python benchmarks/detection/lung_pet_ct_dx.py --out /work/bench/lung_pet_ct_dx --minutes 6
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

DATA = Path("/work/shared/data/lung_pet_ct_dx_ct_dicom")


def convert(out: Path) -> dict:
    from medsight.io.images import write_like
    from medsight.io.slice_boxes import read_series_with_slice_boxes

    study = next(DATA.rglob("*ThoraxRoutine Adult*"))
    found = {}
    for series in sorted(study.iterdir()):
        kernel = series.name.split()[-1].split("-")[0]  # "B40f" / "B70f"
        image, boxes, names, slices = read_series_with_slice_boxes(series, DATA / "Annotation" / "A0002")
        images, labels = ("imagesTr", "labelsTr") if kernel == "B40f" else ("imagesTs", "labelsTs")
        (out / images).mkdir(parents=True, exist_ok=True)
        (out / labels).mkdir(parents=True, exist_ok=True)
        mask = np.zeros(image.array.shape[1:], np.uint8)
        for k, box in enumerate(boxes.astype(int), 1):
            mask[box[0]:box[3], box[1]:box[4], box[2]:box[5]] = k
        write_like(image.array.astype(np.int16), image, out / images / f"A0002_{kernel}_0000.nii.gz")
        write_like(mask[None], image, out / labels / f"A0002_{kernel}.nii.gz")
        (out / labels / f"A0002_{kernel}.json").write_text(json.dumps({"instances": {str(k): 0 for k in range(1, len(boxes) + 1)}}))
        spacing = np.asarray(image.spacing[::-1])
        found[kernel] = {"series": series.name, "annotated_slices": slices, "boxes_voxels": boxes.tolist(),
                         "box_size_mm": [((b[3:] - b[:3]) * spacing).round(1).tolist() for b in boxes],
                         "hu_range": [float(image.array.min()), float(image.array.max())]}
    (out / "dataset.json").write_text(json.dumps({"name": "Lung-PET-CT-Dx A0002", "labels": {"0": "tumour"},
                                                  "modality": {"0": "CT"}}))
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=6.0)
    args = parser.parse_args()
    from medsight import api

    data, run = args.out / "data", args.out / "run"
    started = time.time()
    series = convert(data)
    plan = api.plan(data, run)
    api.train(data, run, minutes=args.minutes)
    result = api.evaluate(run, split="test")
    pred = api.predict([run], [sorted((data / "imagesTs").glob("*.nii.gz"))[0]], args.out / "pred")
    records = json.loads((args.out / "pred" / "results.json").read_text(encoding="utf-8"))
    truth = series["B70f"]["boxes_voxels"][0]
    record = {"command": f"python benchmarks/detection/lung_pet_ct_dx.py --out {args.out} --minutes {args.minutes:g}",
              "cores": os.cpu_count(), "machine": platform.processor() or platform.machine(),
              "wall_s": round(time.time() - started, 1),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "series": series, "target_spacing": plan["target_spacing"], "patch_size": plan["patch_size"],
              "anchor_shapes_mm": plan["anchor_shapes_mm"], "test_metrics": result["metrics"],
              "best_prediction": records[0] if records else None, "true_box_B70f": truth, "predict": pred}
    print(json.dumps(record, indent=1))
    with open(Path(__file__).with_name("lung_pet_ct_dx.jsonl"), "a") as handle:
        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
