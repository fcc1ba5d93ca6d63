"""A darknet/YOLO folder with each photograph linked K times (image and label file), for memory measurements.

    python benchmarks/detection/darknet_copies.py /work/shared/data/idrid_fundus_codras /work/bench/fundus/det2400 --copies 10

Every link is a distinct case to medsight (its own name, decoded on its own), so the caches and the training
loop see K times the photographs while the disk holds them once.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("src", help="a darknet folder: images/*.jpg with a .txt beside each, and a .names file")
    parser.add_argument("out")
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args()
    src, out = Path(args.src), Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    for names in src.glob("*.names"):
        shutil.copyfile(names, out / names.name)
    count = 0
    for image in sorted((src / "images").glob("*.jpg")):
        label = image.with_suffix(".txt")
        for k in range(args.copies):
            link = out / "images" / f"{image.stem}_c{k}.jpg"
            if not link.exists():
                link.symlink_to(image.resolve())
            if label.exists() and not link.with_suffix(".txt").exists():
                link.with_suffix(".txt").symlink_to(label.resolve())
            count += 1
    print(out, count, "photographs")


if __name__ == "__main__":
    main()
