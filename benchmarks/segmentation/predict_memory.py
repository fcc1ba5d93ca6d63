"""Peak memory and time of the prediction pipeline on large synthetic volumes.

Runs predict_label (normalise, resample, Gaussian sliding windows, softmax, resample back, argmax) with a
1x1x1-convolution network, so the figures are those of the pipeline's full-volume buffers; a real network adds
its per-window activations (a patch-sized, volume-independent amount) and its compute time.
Usage: python benchmarks/segmentation/predict_memory.py OUT.json [SHAPE ...] (shapes like 300x512x512)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import numpy as np


def one_volume(shape: tuple[int, ...], resample: bool) -> dict:
    import monai.inferers  # noqa: F401  (imported before timing: its import takes seconds)
    import torch

    from medsight.tasks.segmentation.infer import predict_label

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    image = rng.normal(100, 20, (1, *shape)).astype(np.float32)
    spacing = (1.0, 0.8, 0.8) if resample else (1.0, 1.0, 1.0)
    plan = {"target_spacing": [1.0, 1.0, 1.0], "normalization": [{"scheme": "zscore"}], "patch_size": [128, 128, 128],
            "inference": {"overlap": 0.5, "mirror_axes": [0, 1, 2], "tta": False, "sw_batch_size": 1}}
    model = torch.nn.Conv3d(1, 3, 1).eval()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    label, _ = predict_label([model], image, spacing, plan, {"postprocessing": {"largest_component": []}})
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"shape": list(shape), "resampled": resample, "seconds": round(seconds, 1),
            "peak_rss_gib": round(peak / 2**20, 2), "rss_before_gib": round(before / 2**20, 2),
            "input_gib": round(image.nbytes / 2**30, 2)}


def main(out: str, shapes: list[str]) -> None:
    results = []
    for text in shapes:
        for resample in (False, True):
            # a fresh process per volume: ru_maxrss is a high-water mark
            code = (f"import json,sys; sys.path.insert(0, {sys.path[0]!r}); from predict_memory import one_volume; "
                    f"print(json.dumps(one_volume({tuple(int(v) for v in text.split('x'))}, {resample})))")
            line = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
            results.append(json.loads(line.strip().splitlines()[-1]))
            print(results[-1], flush=True)
    with open(out, "w") as handle:
        json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or ["75x128x128", "150x256x256", "300x512x512"])
