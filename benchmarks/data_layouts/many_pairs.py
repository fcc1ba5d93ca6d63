"""Write N Kvasir-like pairs (images/*.jpg 512x512 RGB, masks/*.png 0/255) to OUT, for timing `medsight check` at
the size of a real set. Usage: python benchmarks/data_layouts/many_pairs.py OUT N
then: /usr/bin/time -v python -m medsight check OUT > /dev/null   (peak RSS: "Maximum resident set size")."""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

out, count = Path(sys.argv[1]), int(sys.argv[2])
(out / "images").mkdir(parents=True, exist_ok=True)
(out / "masks").mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
yy, xx = np.mgrid[:512, :512]
for k in range(count):
    cy, cx, r = rng.integers(100, 412, 2).tolist() + [int(rng.integers(20, 90))]
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    image = rng.integers(30, 120, (512, 512, 3), dtype=np.uint8)
    image[inside] = (200, 80, 80)
    Image.fromarray(image).save(out / "images" / f"case{k:05d}.jpg", quality=90)
    Image.fromarray(np.where(inside, 255, 0).astype(np.uint8)).save(out / "masks" / f"case{k:05d}.png")
