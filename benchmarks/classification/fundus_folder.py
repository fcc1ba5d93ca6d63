"""IDRiD photographs (CODRAS boxes) as a lesion / none class folder of symlinks, for classification.

    python benchmarks/classification/fundus_folder.py /work/shared/data/idrid_fundus_codras /work/bench/fundus/idrid_class
    python benchmarks/classification/fundus_folder.py /work/shared/data/idrid_fundus_codras /work/bench/fundus/idrid_class2400 --copies 10

An image with any hard-exudate or haemorrhage box is a lesion image, any other none (the optic disc is not
a lesion): 160 / 80. medsight orders class names alphabetically and reports sensitivity for the second, so
the folders are 0_none and 1_lesion. --copies makes that many links per photograph (memory measurements).
"""

from __future__ import annotations

import argparse
from pathlib import Path

LESION_CLASSES = {"hard_exudates", "haemorrhage"}
NEGATIVE, POSITIVE = "0_none", "1_lesion"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("codras")
    parser.add_argument("out")
    parser.add_argument("--copies", type=int, default=1)
    args = parser.parse_args()
    codras, out = Path(args.codras), Path(args.out)
    names = (codras / "retinal.names").read_text(encoding="utf-8").split()
    lesion_ids = {str(k) for k, name in enumerate(names) if name in LESION_CLASSES}
    counts: dict[str, int] = {}
    for image in sorted((codras / "images").glob("*.jpg")):
        boxes = image.with_suffix(".txt")
        classes = {line.split()[0] for line in boxes.read_text(encoding="utf-8").splitlines() if line.strip()} if boxes.exists() else set()
        label = POSITIVE if classes & lesion_ids else NEGATIVE
        (out / label).mkdir(parents=True, exist_ok=True)
        for k in range(args.copies):
            link = out / label / (image.name if args.copies == 1 else f"{image.stem}_c{k}.jpg")
            if not link.exists():
                link.symlink_to(image.resolve())
            counts[label] = counts.get(label, 0) + 1
    print(out, counts)


if __name__ == "__main__":
    main()
