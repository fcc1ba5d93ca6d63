"""Detection evaluation of a split: metrics.json, curves, overlays and report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medsight.jsonio import save_json
from medsight.metrics.definitions import detection_definitions
from medsight.report import plots
from medsight.report.html import Section, write_report

SHOW_SCORE = 0.5  # overlays draw predictions at or above this score (and at least the best one)...
SHOW_MOST = 20  # ...but no more than this many, the best first
TRUE_COLOUR, PRED_COLOUR = (0, 200, 0), (230, 30, 30)


def coco_box(box: np.ndarray) -> list[float]:
    """Array-order corners -> COCO [x, y, (z,) w, h, (d)] with x the last array axis."""
    dims = len(box) // 2
    low, size = box[:dims][::-1], (box[dims:] - box[:dims])[::-1]
    return [round(float(v), 2) for v in np.concatenate([low, size])]


def world_box(box: np.ndarray, image: Any) -> dict[str, list[float]]:
    """Array-order continuous corners -> world (mm, x y z) corners and centre via spacing/origin/direction."""
    dims = len(box) // 2
    spacing, origin = np.asarray(image.spacing, float), np.asarray(image.origin, float)
    direction = np.asarray(image.direction, float).reshape(dims, dims) if len(image.direction) == dims * dims else np.eye(dims)

    def to_world(corner: np.ndarray) -> np.ndarray:
        index = corner[::-1] - 0.5  # continuous coordinate -> ITK index (x first, voxel centres at integers)
        return origin + direction @ (spacing * index)

    a, b = to_world(box[:dims]), to_world(box[dims:])
    return {"min": np.minimum(a, b).round(3).tolist(), "max": np.maximum(a, b).round(3).tolist(),
            "center": ((a + b) / 2).round(3).tolist()}


def category_ids(classes: Sequence[str], *sources: Any) -> list[Any]:
    """Each class's category_id in results.json: the first source's own ids (a COCO file's, in a data set or a
    run's dataset.json) that numbers these classes, so a user scores the file against their annotations;
    else 1..K."""
    for source in sources:
        ids = source.get("category_ids") if isinstance(source, dict) else getattr(source, "category_ids", None)
        if ids and len(ids) == len(classes):
            return list(ids)
    return list(range(1, len(classes) + 1))


def image_ids(dataset: Any) -> list[Any]:
    """Each case's image_id in results.json: the COCO file's image id where it has one, else the case id."""
    ids = getattr(dataset, "image_ids", None)
    return list(ids) if ids and len(ids) == len(dataset.case_ids) else list(dataset.case_ids)


def result_records(image_id: Any, found: dict[str, np.ndarray], classes: Sequence[str], image: Any = None,
                   categories: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """COCO result records of one image's boxes; categories: the category_id of each class (default 1..K)."""
    categories = list(categories) if categories is not None else list(range(1, len(classes) + 1))
    records = []
    for box, score, label in zip(found["boxes"], found["scores"], found["labels"]):
        record = {"image_id": image_id, "category_id": categories[int(label)], "category": classes[int(label)],
                  "bbox": coco_box(box), "score": round(float(score), 5)}
        if image is not None and len(box) == 6:
            record["bbox_world"] = world_box(box, image)
        records.append(record)
    return records


def display(raw: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W, 3) uint8, percentile-windowed."""
    image = raw[:3] if raw.shape[0] >= 3 else np.repeat(raw[:1], 3, axis=0)
    low, high = np.percentile(image, [0.5, 99.5])
    image = np.clip((image - low) / max(high - low, 1e-6), 0, 1)
    return (np.moveaxis(image, 0, -1) * 255).astype(np.uint8)


def shown(found: dict[str, np.ndarray]) -> np.ndarray:
    keep = found["scores"] >= SHOW_SCORE
    if len(keep) and not keep.any():
        keep[np.argmax(found["scores"])] = True
    keep[np.argsort(-found["scores"], kind="mergesort")[SHOW_MOST:]] = False
    return keep


def draw_overlay(raw: np.ndarray, found: dict[str, np.ndarray], truth: np.ndarray | None, path: Path,
                 classes: Sequence[str]) -> Path:
    """PNG of the image (3D: the axial slice through the best box) with true (green) and predicted (red) boxes."""
    from PIL import Image, ImageDraw

    dims = raw.ndim - 1
    keep = shown(found)
    pred = found["boxes"][keep]
    labels, scores = found["labels"][keep], found["scores"][keep]
    truth = np.zeros((0, 2 * dims)) if truth is None else truth
    if dims == 3:
        anchor = pred[0] if len(pred) else (truth[0] if len(truth) else None)
        z = int((anchor[0] + anchor[3]) / 2) if anchor is not None else raw.shape[1] // 2
        z = int(np.clip(z, 0, raw.shape[1] - 1))

        def on_slice(b: np.ndarray) -> np.ndarray:
            inside = (b[:, 0] <= z + 0.5) & (b[:, 3] >= z + 0.5) if len(b) else np.zeros(0, bool)
            return inside

        on = on_slice(pred)
        pred, labels, scores = pred[on][:, [1, 2, 4, 5]], labels[on], scores[on]
        truth = truth[on_slice(truth)][:, [1, 2, 4, 5]] if len(truth) else np.zeros((0, 4))
        raw = raw[:, z]
    picture = Image.fromarray(display(raw))
    zoom = max(1, int(np.ceil(256 / max(picture.size))))
    picture = picture.resize((picture.width * zoom, picture.height * zoom), Image.NEAREST)
    draw = ImageDraw.Draw(picture)

    def corners(box: np.ndarray) -> list[float]:
        x0, y0 = box[1] * zoom, box[0] * zoom
        return [x0, y0, max(x0, box[3] * zoom - 1), max(y0, box[2] * zoom - 1)]

    for box in truth:
        draw.rectangle(corners(box), outline=TRUE_COLOUR, width=2)
    for box, label, score in zip(pred, labels, scores):
        draw.rectangle(corners(box), outline=PRED_COLOUR, width=2)
        draw.text((box[1] * zoom + 2, box[0] * zoom + 1), f"{classes[int(label)]} {score:.2f}", fill=PRED_COLOUR)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


def evaluate_detection(task: Any, run: Any, model: Any, dataset: Any, split: str, out_dir: Path) -> dict[str, Any]:
    """Predict a split, write metrics.json, predictions/results.json, plots and report.html.

    model: one network, or a list of them (an ensemble: the union of their boxes, merged by per-class NMS)."""
    indices = dataset.splits[split]
    classes = list(dataset.classes)
    result, predictions = task.score_cases(list(model) if isinstance(model, (list, tuple)) else [model], dataset, indices)
    out_dir.mkdir(parents=True, exist_ok=True)
    records, ids, categories = [], image_ids(dataset), category_ids(classes, dataset, task.info)
    for index, found in zip(indices, predictions):
        image = dataset.load_geometry(int(index)) if dataset.spatial_dims == 3 else None
        records += result_records(ids[index], found, classes, image, categories)
    save_json(out_dir / "predictions" / "results.json", records)
    if dataset.spatial_dims == 3:
        from medsight.tasks.detection.world import write_submission

        write_submission(out_dir / "predictions" / "submission.csv", records)  # LUNA16's format
    metrics = {"task": "detection", "split": split, "num_cases": int(len(indices)), "metrics": result["metrics"],
               "per_class": result["per_class"], "num_boxes": int(sum(len(dataset.boxes[i]) for i in indices)),
               "definitions": detection_definitions(dataset.spatial_dims)}
    if result["metrics"].get("froc_rule") == "luna16":
        metrics["definitions"]["froc"] += ("; this run plans in millimetres, so centres are in world mm (origin and "
                                           "direction applied) and a reference's radius is half its annotated "
                                           "diameter where the data set gives one (LUNA16's annotations.csv)")
    save_json(out_dir / "metrics.json", metrics)

    plot_dir = out_dir / "plots"
    pr = {name: (c["recall"], c["precision"]) for name, c in result["curves"]["pr"].items()}
    images = [plots.curve(pr, plot_dir / "pr_curves.png", "recall", "precision", "Precision-recall at IoU 0.5", ylim=(0, 1.02))]
    froc_curve = result["curves"]["froc"]
    fp, sens = np.asarray(froc_curve["fp_per_image"]), np.asarray(froc_curve["sensitivity"])
    keep = (fp >= 1 / 8) & (fp <= 8)
    unit = "scan" if dataset.spatial_dims == 3 else "image"
    images.append(plots.curve({"FROC": (fp[keep], sens[keep])} if keep.any() else {}, plot_dir / "froc.png",
                              f"false positives per {unit}", "sensitivity", f"FROC (CPM {result['metrics']['cpm']:.3f})",
                              xscale="log", ylim=(0, 1.02)))
    overlays = []
    for index, found in list(zip(indices, predictions))[:6]:
        overlays.append(draw_overlay(dataset.load_case(int(index)), found, dataset.boxes[index],
                                     plot_dir / f"overlay_{dataset.case_ids[index]}.png", classes))
    if run is not None and Path(run.log_path).is_file():
        images.append(plots.training_curves(run.log_path, plot_dir / "training.png"))
    m = result["metrics"]
    table = [{"class": name, "AP@[.5:.95]": v["ap_50_95"], "AP@0.5": v["ap_50"], "AP@0.75": v["ap_75"],
              "AR@100": v["ar_100"], "AP@0.5 VOC all-point": v["ap50_voc_allpoint"], "true boxes": v["num_boxes"]}
             for name, v in result["per_class"].items()]
    froc_table = [{"hit rule": "LUNA16 (centre within radius)", **{f"{k} FP/{unit}": v for k, v in m["froc"].items()},
                   "CPM": m["cpm"]},
                  {"hit rule": "IoU >= 0.1", **{f"{k} FP/{unit}": v for k, v in m["froc_iou"].items()}, "CPM": m["cpm_iou"]}]
    sections = [
        Section("Average precision per class", table=table, images=images[:1],
                how_to_read="AP is the area under each class's precision-recall curve (COCO's 101-point sample; the VOC all-point area beside it); 1.0 means every box found with no false alarm ranked above it."),
        Section("FROC", table=froc_table, images=images[1:2],
                how_to_read=f"Share of true boxes found when the model is allowed 1/8 to 8 false positives per {unit}; CPM is their mean (LUNA16)."),
        Section("Examples", images=overlays,
                how_to_read="Green: true boxes. Red: predicted boxes with their class and score (3D: the slice through the best box)."),
    ] + ([Section("Training", images=images[2:])] if len(images) > 2 else [])
    summary = {"map_50_95": m["map_50_95"], "map_50": m["map_50"], "map_75": m["map_75"], "mar_100": m["mar_100"],
               "map50_voc_allpoint": m["map50_voc_allpoint"], "cpm": m["cpm"], "cases": int(len(indices))}
    details = {"run": str(run.path) if run is not None else "", "split": split, "data": str(dataset.path)}
    report = write_report(out_dir / "report.html", f"Detection: {Path(dataset.path).name}, {split} split", summary,
                          sections, details, definitions=metrics["definitions"])
    return {**metrics, "report": str(report)}
