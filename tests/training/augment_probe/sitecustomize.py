"""Loaded by every Python process when this folder is on PYTHONPATH: with MEDSIGHT_PROBE_LOG set, each
BatchAugment.draw appends "RANK DIGEST" (a sha256 of the drawn parameters) to that file, so a test can see
which augmentations each DDP rank drew."""

import hashlib
import os


def digest(params) -> str:
    total = hashlib.sha256()
    for key in sorted(params):
        total.update(key.encode())
        total.update(params[key].detach().cpu().numpy().tobytes())
    return total.hexdigest()[:16]


if os.environ.get("MEDSIGHT_PROBE_LOG"):
    from medsight.data import augment

    _draw = augment.BatchAugment.draw

    def _logged_draw(self, batch_size, generator):
        params = _draw(self, batch_size, generator)
        with open(os.environ["MEDSIGHT_PROBE_LOG"], "a") as handle:
            handle.write(f"{os.environ.get('RANK', '0')} {batch_size} {digest(params)}\n")
        return params

    augment.BatchAugment.draw = _logged_draw
