"""medsight's COCO numbers against pycocotools' COCOeval on one trained run's predictions.

    python benchmarks/detection/coco_agreement.py RUN [--split test] [--json OUT.json]

Predicts the split with RUN's model exactly as `medsight evaluate` does (``task.score_cases``, whose numbers
go into metrics.json), then scores the same predictions (unrounded boxes and scores) against the split's
reference boxes with pycocotools. Prints a table of every COCO number both give (mAP@[.5:.95], mAP@0.5,
mAP@0.75, mAR@100 and AP@[.5:.95] per class) with the absolute difference, and exits 1 when any differs by
more than 1e-6. COCOeval's area-range figures (small, medium, large) and mAR@1 / mAR@10 have no medsight
counterpart and are not compared.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys

TOLERANCE = 1e-6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--split", default="test")
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args()

    import torch
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from medsight import api

    torch.set_num_threads(1)
    run, task, model = api.load_run(args.run)
    config = run.load_config()
    _, dataset = api.read_dataset(config.data, config.seed, config.fold)
    classes = list(dataset.classes)
    indices = [int(i) for i in dataset.splits[args.split]]
    got, predictions = task.score_cases([model], dataset, indices)  # what metrics.json reports

    # image ids in medsight's order, so that COCOeval (which walks images by sorted id) pools them alike
    images, annotations, detections = [], [], []
    for n, (index, found) in enumerate(zip(indices, predictions)):
        images.append({"id": n})
        for box, label in zip(dataset.boxes[index], dataset.labels[index]):
            w, h = float(box[3] - box[1]), float(box[2] - box[0])
            annotations.append({"id": len(annotations) + 1, "image_id": n, "category_id": int(label) + 1,
                                "bbox": [float(box[1]), float(box[0]), w, h], "area": w * h, "iscrowd": 0})
        for box, score, label in zip(found["boxes"], found["scores"], found["labels"]):
            detections.append({"image_id": n, "category_id": int(label) + 1, "score": float(score),
                               "bbox": [float(box[1]), float(box[0]), float(box[3] - box[1]), float(box[2] - box[0])]})
    reference = COCO()
    reference.dataset = {"images": images, "annotations": annotations,
                         "categories": [{"id": k + 1, "name": c} for k, c in enumerate(classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        reference.createIndex()
        evaluator = COCOeval(reference, reference.loadRes(detections), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    rows = [(name, got["metrics"][key], float(evaluator.stats[i]))
            for name, key, i in (("mAP@[.5:.95]", "map_50_95", 0), ("mAP@0.5", "map_50", 1),
                                 ("mAP@0.75", "map_75", 2), ("mAR@100", "mar_100", 8))]
    precision = evaluator.eval["precision"][:, :, :, 0, 2]  # (IoU, recall, class), area "all", 100 detections
    for k, name in enumerate(classes):
        values = precision[:, :, k]
        rows.append((f"AP@[.5:.95] {name}", got["per_class"][name]["ap_50_95"], float(values[values > -1].mean())))
    worst = max(abs(a - b) for _, a, b in rows)
    print(f"{len(indices)} images, {len(annotations)} reference boxes, {len(detections)} predicted boxes "
          f"({args.split} split of {dataset.path})")
    print("| figure | medsight | pycocotools | abs. difference |\n|---|---|---|---|")
    for name, a, b in rows:
        print(f"| {name} | {a:.6f} | {b:.6f} | {abs(a - b):.1e} |")
    print(f"VOC all-point mAP@0.5 (medsight only): {got['metrics']['map50_voc_allpoint']:.6f}; "
          f"LUNA16-rule CPM: {got['metrics']['cpm']:.6f}")
    print(f"largest difference {worst:.1e} ({'within' if worst <= TOLERANCE else 'OUTSIDE'} {TOLERANCE:g})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": rows, "images": len(indices), "boxes": len(annotations), "detections": len(detections),
                       "metrics": got["metrics"]},
                      handle, indent=1)
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
