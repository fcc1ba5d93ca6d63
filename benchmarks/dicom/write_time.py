"""Time to write DICOM results on the real chest CT of the shared data: SEG (with its read-back check) and SR.

The mask is made from the CT itself (lung: HU < -400 inside the body; dense: HU > 200), so it has the shape
and size of a real two-class result on 30 x 512 x 512 voxels. Run from the repository root:

    python benchmarks/dicom/write_time.py --ct ../shared/data/lung_pet_ct_dx_ct_dicom/Lung-PET-CT-Dx --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from medsight.dicom.outputs import Algorithm, source_datasets, write_detection_report, write_segmentation, \
    write_volume_report
from medsight.io.dicom_series import SeriesRule, read_study

LABELS = {0: "background", 1: "lung", 2: "bone"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ct", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = Path(args.ct)
    started = time.perf_counter()
    image = read_study(root, SeriesRule())
    read_s = time.perf_counter() - started
    hu = image.array[0]
    body = ndimage.binary_fill_holes(hu > -500, structure=np.ones((1, 3, 3)))
    mask = np.zeros(hu.shape, np.uint8)
    mask[(hu < -400) & ndimage.binary_erosion(body, iterations=3)] = 1
    mask[hu > 200] = 2
    _, sources = source_datasets(root, SeriesRule())
    algorithm = Algorithm("medsight benchmark", "0", "0" * 64)
    voxel = float(np.prod(image.spacing))
    volumes = {LABELS[c]: float((mask == c).sum()) * voxel for c in (1, 2)}
    findings = [{"category": "mass", "score": 0.9, "bbox": [0, 0, 0, 1, 1, 1], "bbox_world": {"center": list(image.origin)}}] * 10
    times = {"seg": [], "sr_volumes": [], "sr_findings": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            t = time.perf_counter()
            seg = write_segmentation(mask, sources, LABELS, {}, algorithm, Path(tmp) / "seg.dcm")
            times["seg"].append(time.perf_counter() - t)
            t = time.perf_counter()
            write_volume_report(seg, volumes, LABELS, sources, algorithm, Path(tmp) / "sr.dcm")
            times["sr_volumes"].append(time.perf_counter() - t)
            t = time.perf_counter()
            write_detection_report(findings, sources, {}, algorithm, Path(tmp) / "det.dcm")
            times["sr_findings"].append(time.perf_counter() - t)
        sizes = {name: (Path(tmp) / f).stat().st_size for name, f in (("seg", "seg.dcm"), ("sr_volumes", "sr.dcm"),
                                                                      ("sr_findings", "det.dcm"))}
    print(json.dumps({"series": image.stored["dicom_series"], "shape": list(image.shape), "read_s": round(read_s, 3),
                      "foreground_voxels": {LABELS[c]: int((mask == c).sum()) for c in (1, 2)},
                      "median_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
                      "all_s": {k: [round(x, 3) for x in v] for k, v in times.items()}, "bytes": sizes}, indent=2))


if __name__ == "__main__":
    main()
