"""What each number in metrics.json means: the ``definitions`` block, written beside the numbers and shown in
report.html, so that a figure can be compared with a published one without reading the code.
"""

from __future__ import annotations

from typing import Sequence

from medsight.metrics.froc import FROC_RATES, IOU_HIT

COCO_MATCHING = ("per image and class, detections by descending score (at most 100) each take the unmatched "
                 "reference box of highest IoU when that IoU >= the threshold (COCOeval's greedy rule; area range "
                 "'all'); failing that, a detection on an ignored box (COCO iscrowd, by intersection over the "
                 "detection's area; VOC difficult, by IoU) is neither a true nor a false positive, and ignored "
                 "boxes do not count in recall; 3D boxes use the IoU of volumes")
COCO_AVERAGING = "mean over the classes that have a reference box; a class without predictions counts as 0"


def detection_definitions(spatial_dims: int) -> dict[str, str]:
    unit = "scan" if spatial_dims == 3 else "image"
    space = "world millimetres (voxel spacing applied)" if spatial_dims == 3 else "pixels"
    rates = ", ".join(f"{r:g}" for r in FROC_RATES)
    return {
        "map_50_95": ("COCO mAP@[.5:.95]: AP at IoU 0.50, 0.55, ..., 0.95, averaged; AP is the precision envelope "
                      "sampled at the 101 recall points 0, 0.01, ..., 1 (pycocotools' COCOeval, stats[0])"),
        "map_50": "COCO mAP@0.5: the same 101-point AP at IoU 0.5 (COCOeval stats[1])",
        "map_75": "COCO mAP@0.75: the same 101-point AP at IoU 0.75 (COCOeval stats[2])",
        "mar_100": ("COCO mAR@100: recall with up to 100 detections per image and class, averaged over IoU "
                    "0.50:0.95 (COCOeval stats[8])"),
        "map50_voc_allpoint": ("VOC mAP@0.5, all-point interpolation: the area under the precision envelope at every "
                               "recall step (Pascal VOC 2010 and later); not COCO's 101-point sample"),
        "matching": COCO_MATCHING,
        "averaging": COCO_AVERAGING,
        "froc": (f"LUNA16 FROC: sensitivity at {rates} false positives per {unit}. A candidate hits a reference when "
                 f"its box centre lies strictly within the reference's radius (half the mean box extent) in {space}, "
                 "same class, every candidate counted (no cap); each reference counts once, at the best score that "
                 "hits it; other candidates on a found reference are ignored; the rest are false positives. "
                 "Sensitivity at a rate is read off the curve "
                 "over score thresholds by linear interpolation, as the LUNA16 script does"),
        "cpm": "LUNA16 CPM: mean of the seven FROC sensitivities",
        "froc_iou": (f"alternative FROC: the same counting with a hit at IoU >= {IOU_HIT:g} between boxes instead "
                     "of the centre-in-sphere rule"),
        "cpm_iou": "mean of the seven froc_iou sensitivities",
    }


def segmentation_definitions(tolerance_mm: Sequence[float] | float, class_names: Sequence[str] = (),
                             surface_elements: bool = True) -> dict[str, str]:
    tolerance = tolerance_text(tolerance_mm, class_names)
    surface = ("surface elements weighted by area, MONAI compute_surface_dice with use_subvoxels=True"
               if surface_elements else
               "boundary voxels counted alike, MONAI compute_surface_dice (this MONAI has no use_subvoxels)")
    return {
        "dice": "Dice 2|P∩R| / (|P|+|R|) per case and foreground class; 1 when a class is absent from both",
        "iou": "IoU |P∩R| / |P∪R| per case and foreground class; 1 when a class is absent from both",
        "hd95": ("HD95 in mm: the larger of the two directed 95th percentiles of distances from the boundary voxels "
                 "of one mask to the boundary of the other (MONAI compute_hausdorff_distance, percentile 95, voxel "
                 "spacing applied); 0 when a class is absent from both, the image diagonal when it is in only one"),
        "nsd": (f"normalised surface Dice at tolerance {tolerance}: the share of the two boundaries' surface area "
                f"({surface}) that lies "
                "within the tolerance of the other boundary; 1 when absent from both, 0 when in only one"),
        "lesion_f1": ("lesion-wise detection per class: connected components (full connectivity) of prediction and "
                      "reference; a reference component overlapped by at least one predicted voxel is a true positive "
                      "(TP), one without a false negative (FN); a predicted component overlapping no reference voxel "
                      "is a false positive (FP); counts pooled over cases; lesion_recall TP/(TP+FN), lesion_precision "
                      "TP/(TP+FP), lesion_f1 2TP/(2TP+FP+FN); headline lesion_f1: mean over classes where defined"),
        "averaging": "per-class values are means over cases; headline values are means over foreground classes",
    }


def tolerance_text(tolerance_mm: Sequence[float] | float, class_names: Sequence[str] = ()) -> str:
    if isinstance(tolerance_mm, (int, float)):
        return f"{float(tolerance_mm):g} mm"
    values = [float(v) for v in tolerance_mm]
    if len(set(values)) == 1:
        return f"{values[0]:g} mm"
    return ", ".join(f"{n} {v:g} mm" for n, v in zip(class_names, values))


def classification_definitions(multi_label: bool = False, ordinal: bool = False) -> dict[str, str]:
    if multi_label:
        auc = "ROC AUC per label (Mann-Whitney, ties count one half), macro mean over labels with both values present"
    else:
        auc = ("ROC AUC (Mann-Whitney, ties count one half): two classes, the AUC of the positive class's probability; "
               "more classes, the macro mean of one-vs-rest AUCs (as MedMNIST's evaluator), classes absent from "
               "the split left out")
    out = {
        "auc": auc,
        "decisions": ("accuracy, precision, recall, F1, kappa and sensitivity/specificity use the run's operating "
                      "point (operating_point); metrics_argmax holds them at the highest probability"),
        "accuracy": "share of cases whose decided class is the reference class" if not multi_label else
                    "per label share of correct decisions, macro mean",
        "precision": "macro mean over classes of precision (classes never predicted nor present left out)",
        "recall": "macro mean over classes of recall",
        "f1": "macro mean over classes of F1 = 2TP / (2TP + FP + FN)",
        "ci95": "percentile bootstrap over cases (ci_method)",
        "selection_score": ("the validation score that picks the epoch (state.json's training.best_score): the AUC "
                            "above over the "
                            "classes present in the validation split, so a class missing there leaves it on the "
                            "AUC scale"),
    }
    if not multi_label:
        out["balanced_accuracy"] = "mean recall over the classes present"
        out["kappa"] = "Cohen's kappa, unweighted"
    if ordinal:
        out["kappa_quadratic"] = "Cohen's kappa with quadratic weights (grades far apart cost more)"
    return out
