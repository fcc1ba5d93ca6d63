"""Preprocessing steps a plan lists: crop to the non-zero region, N4 bias-field correction, denoising, CLAHE.

Each step is a plain function on a (C, *spatial) float array and its spacing (array axis order).
``apply_steps`` runs the plan's ``preprocessing.steps`` in order. The steps the tasks already had
(segmentation's ``resample`` to the target spacing, classification's ``resize`` to the input size, and
``normalize``) are in the same list but run by callables the task hands in, so plan.json shows every step
while their code stays with the task. Training, evaluate, predict, the ONNX engine and the server all
prepare images through this one function, reading the run's plan.json.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np
import torch

from medsight.errors import MedsightError

TASK_STEPS = {"segmentation": ("resample", "normalize"), "classification": ("resize", "normalize"),
              "detection": ("normalize", "scale")}
REQUIRED = {"classification": ("resize",)}  # the network takes exactly input_size
GEOMETRIC = ("resample", "resize", "scale")
ENTRY_KEYS = ("name", "enabled", "reason")  # keys of a step entry that are not options of its function


# One entry per geometric step: what it changed, and how to undo it. ``resize(array, shape)`` is the
# interpolation the caller wants for what it maps back (probabilities, heat maps); ``fill`` the value per
# channel outside a crop.
Resize = Callable[[Any, Sequence[int]], Any]


@dataclass(frozen=True)
class Cropped:
    """crop_nonzero kept ``box`` of a grid of ``shape``."""

    box: tuple[slice, ...]
    shape: tuple[int, ...]

    def invert(self, array: Any, resize: Resize, fill: Sequence[float]) -> Any:
        return uncrop(array, self.box, self.shape, fill)

    def map_boxes(self, boxes: np.ndarray) -> np.ndarray:
        return boxes - _per_corner([b.start for b in self.box], boxes)

    def invert_boxes(self, boxes: Any) -> Any:
        return boxes + _per_corner([b.start for b in self.box], boxes)


@dataclass(frozen=True)
class Resized:
    """resample, resize or scale took the grid from ``shape`` to another.

    ``factors``: how coordinates scale per axis, when the step says so (detection's scale, which its boxes
    follow); else the ratio of the shapes.
    """

    shape: tuple[int, ...]
    new_shape: tuple[int, ...]
    factors: tuple[float, ...] | None = None

    def invert(self, array: Any, resize: Resize, fill: Sequence[float]) -> Any:
        return resize(array, self.shape)

    def coordinate_factors(self) -> list[float]:
        return list(self.factors) if self.factors else [n / s for n, s in zip(self.new_shape, self.shape)]

    def map_boxes(self, boxes: np.ndarray) -> np.ndarray:
        return boxes * _per_corner(self.coordinate_factors(), boxes)

    def invert_boxes(self, boxes: Any) -> Any:
        return boxes / _per_corner(self.coordinate_factors(), boxes)


def _per_corner(values: Sequence[float], boxes: Any) -> Any:
    """Per-axis values for (N, 2 * dims) corner boxes, in the boxes' own type."""
    row = [*values, *values]
    if isinstance(boxes, torch.Tensor):
        return torch.tensor(row, dtype=boxes.dtype, device=boxes.device)
    return np.asarray(row, dtype=boxes.dtype if np.issubdtype(np.asarray(boxes).dtype, np.floating) else np.float64)


@dataclass
class Prepared:
    """An image on its way through the steps, with the record of the geometric steps that maps a prediction back."""

    image: Any  # (C, *spatial) numpy array or torch tensor
    spacing: tuple[float, ...]
    label: Any | None = None  # (*spatial); follows the geometric steps only
    history: tuple[Cropped | Resized, ...] = ()

    def invert(self, array: Any, resize: Resize, fill: Sequence[float] = (0.0,)) -> Any:
        """A (C, *network grid) array back on the source grid: the geometric steps undone, the last one first."""
        for entry in reversed(self.history):
            array = entry.invert(array, resize, fill)
        return array

    def map_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 2 * dims) corner boxes of the source grid onto the network's grid."""
        for entry in self.history:
            boxes = entry.map_boxes(boxes)
        return boxes

    def invert_boxes(self, boxes: Any) -> Any:
        """Boxes found on the network's grid back to the source grid, the steps undone last first."""
        for entry in reversed(self.history):
            boxes = entry.invert_boxes(boxes)
        return boxes


# the steps ------------------------------------------------------------------------------------------------------
def nonzero_box(image: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of the voxels that are non-zero in any channel (the whole grid when none is)."""
    from monai.transforms.utils import generate_spatial_bounding_box

    start, end = generate_spatial_bounding_box(image, select_fn=lambda x: x != 0)
    if any(e <= s for s, e in zip(start, end)):
        return tuple(slice(0, n) for n in image.shape[1:])
    return tuple(slice(int(s), int(e)) for s, e in zip(start, end))


def uncrop(array: Any, box: tuple[slice, ...], shape: Sequence[int], fill: Sequence[float]) -> Any:
    """Put a (C, *box) array back into a (C, *shape) grid whose outside holds fill[c] per channel."""
    out = torch.empty((array.shape[0], *shape), dtype=array.dtype) if isinstance(array, torch.Tensor) \
        else np.empty((array.shape[0], *shape), dtype=array.dtype)
    for c in range(array.shape[0]):
        out[c] = fill[c] if c < len(fill) else 0
    out[(slice(None), *box)] = array
    return out


def _sitk_image(array: np.ndarray, spacing: Sequence[float]):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    image.SetSpacing([float(s) for s in reversed(spacing)])  # SimpleITK's axes are (x, y, z)
    return image


def n4_bias_field(image: np.ndarray, spacing: Sequence[float], channels: Sequence[int] | None = None,
                  shrink_factor: int = 4, iterations: Sequence[int] = (50, 50, 50)) -> np.ndarray:
    """N4 bias-field correction (SimpleITK) of the given channels; the field is fitted on a shrunk image."""
    import SimpleITK as sitk

    out = np.array(image, dtype=np.float32, copy=True)
    for ch in range(len(out)) if channels is None else channels:
        raw = _sitk_image(out[ch], spacing)
        # N4 fits log intensities: only positive voxels above Otsu's threshold (the tissue) take part
        mask = sitk.And(sitk.OtsuThreshold(raw, 0, 1, 200), sitk.BinaryThreshold(raw, 1e-6, 1e30, 1, 0))
        if sitk.GetArrayViewFromImage(mask).sum() < 16:
            continue  # nothing to fit: leave the channel as it is
        factors = [max(1, min(int(shrink_factor), n // 8)) for n in raw.GetSize()]
        corrector = sitk.N4BiasFieldCorrectionImageFilter()
        corrector.SetMaximumNumberOfIterations([int(i) for i in iterations])
        corrector.Execute(sitk.Shrink(raw, factors), sitk.Shrink(mask, factors))
        log_field = sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(raw))
        out[ch] = out[ch] / np.exp(log_field)
    return out


def noise_sigma(x: np.ndarray) -> float:
    """Gaussian noise level from the median absolute difference of neighbours along the last axis.

    (skimage's estimate_sigma needs PyWavelets, which medsight does not depend on; edges barely move a median.)
    """
    differences = np.diff(np.asarray(x, dtype=np.float64), axis=-1)
    return float(np.median(np.abs(differences - np.median(differences))) / 0.6745 / np.sqrt(2.0))


def denoise(image: np.ndarray, spacing: Sequence[float], method: str = "curvature_flow", iterations: int = 5,
            time_step: float | None = None, strength: float = 0.8) -> np.ndarray:
    """Edge-preserving denoising per channel: SimpleITK's curvature flow or scikit-image's non-local means."""
    out = np.empty(image.shape, dtype=np.float32)
    dims = image.ndim - 1
    for ch in range(len(image)):
        x = np.asarray(image[ch], dtype=np.float32)
        if method == "curvature_flow":
            import SimpleITK as sitk

            # in voxel units (spacing 1): ITK's stable time step is 0.125 in 2D, 0.0625 in 3D
            step = time_step if time_step is not None else (0.125 if dims == 2 else 0.0625)
            smooth = sitk.CurvatureFlow(_sitk_image(x, [1.0] * dims), timeStep=float(step),
                                        numberOfIterations=int(iterations))
            out[ch] = sitk.GetArrayFromImage(smooth)
        elif method == "nl_means":
            from skimage.restoration import denoise_nl_means

            sigma = noise_sigma(x)
            out[ch] = denoise_nl_means(x, h=strength * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                                       fast_mode=True) if sigma > 0 else x
        else:
            raise MedsightError("plan.json", f"denoise method {method!r} is unknown; choose curvature_flow or nl_means")
    return out


def clahe(image: np.ndarray, spacing: Sequence[float], clip_limit: float = 0.01,
          kernel_size: int | Sequence[int] | None = None) -> np.ndarray:
    """CLAHE (scikit-image), in the image's own intensity range; a 2D RGB image is equalised on its value."""
    from skimage.exposure import equalize_adapthist

    x = np.asarray(image, dtype=np.float32)
    if x.shape[0] == 3 and x.ndim == 3:  # colour: skimage equalises the V of HSV, keeping hue
        low, high = min(0.0, float(x.min())), float(x.max())  # scaled from 0, so channel ratios (hue) stay
        if high <= low:
            return x.copy()
        rgb = np.moveaxis((x - low) / (high - low), 0, -1)
        equalised = equalize_adapthist(rgb, kernel_size=kernel_size, clip_limit=clip_limit)
        return np.moveaxis(equalised, -1, 0).astype(np.float32) * (high - low) + low
    out = np.empty_like(x)
    for ch in range(len(x)):
        low, high = float(x[ch].min()), float(x[ch].max())
        if high <= low:
            out[ch] = x[ch]
            continue
        equalised = equalize_adapthist((x[ch] - low) / (high - low), kernel_size=kernel_size, clip_limit=clip_limit)
        out[ch] = equalised.astype(np.float32) * (high - low) + low
    return out


INTENSITY_STEPS: dict[str, Callable[..., np.ndarray]] = {"n4_bias_field": n4_bias_field, "denoise": denoise,
                                                          "clahe": clahe}


# the plan's list ------------------------------------------------------------------------------------------------
DEFAULT_OPTIONS = {"n4_bias_field": {"shrink_factor": 4, "iterations": [50, 50, 50]},
                   "denoise": {"method": "curvature_flow", "iterations": 5}, "clahe": {"clip_limit": 0.01}}
DEFAULT_CHOICES = {
    # off: nnU-Net does not denoise; the network trains with noise augmentation, and smoothing can erase thin
    # structures and small lesions
    "denoise": (False, "off by default, as nnU-Net; nl_means is the stronger method"),
    # off: not measured to help a network trained with intensity augmentation, which learns local contrast itself
    "clahe": (False, "off until measured to help; for X-ray, fundus and ultrasound images"),
    "resample": (True, "to target_spacing"), "resize": (True, "to input_size"),
    "normalize": (True, "as the normalization entry"),
}


def planned_steps(task: str, choices: dict[str, tuple[bool, str]], **options: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step the task offers, in the order they run, switched on or off with the planner's reason."""
    out = []
    for name in ("crop_nonzero", *INTENSITY_STEPS, *TASK_STEPS[task]):
        enabled, reason = choices.get(name) or DEFAULT_CHOICES[name]
        out.append({"name": name, "enabled": bool(enabled), **DEFAULT_OPTIONS.get(name, {}), **options.get(name, {}),
                    "reason": reason})
    return out


def enabled_steps(plan: dict[str, Any], path: Any = "plan.json") -> list[dict[str, Any]]:
    """The plan's switched-on steps in order, checked; a plan without the section runs the task's own steps."""
    task = plan.get("task")
    section = plan.get("preprocessing")
    if section is None:
        return [{"name": name} for name in TASK_STEPS.get(task, ())]
    if not isinstance(section, dict) or not isinstance(section.get("steps"), list):
        raise MedsightError(path, 'preprocessing must be {"steps": [{"name": ...}, ...]}')
    known = (*INTENSITY_STEPS, "crop_nonzero", *TASK_STEPS.get(task, ()))
    steps = []
    for entry in section["steps"]:
        if not isinstance(entry, dict) or entry.get("name") not in known:
            name = entry.get("name") if isinstance(entry, dict) else entry
            raise MedsightError(path, f"preprocessing step {name!r} is unknown; {task} knows {', '.join(known)}")
        function = INTENSITY_STEPS.get(entry["name"])
        options = set(entry) - set(ENTRY_KEYS)
        allowed = set(inspect.signature(function).parameters) - {"image", "spacing"} if function else set()
        if options - allowed:
            raise MedsightError(path, f"preprocessing step {entry['name']!r} has no option "
                                      f"{sorted(options - allowed)[0]!r}" + (f"; it takes {', '.join(sorted(allowed))}"
                                                                               if allowed else ""))
        if entry.get("enabled", True):
            steps.append(entry)
    names = [s["name"] for s in steps]
    for name in REQUIRED.get(task, ()):
        if name not in names:
            raise MedsightError(path, f"preprocessing step {name!r} cannot be switched off for {task}")
    geometric = [i for i, n in enumerate(names) if n in GEOMETRIC]
    if "crop_nonzero" in names and geometric and names.index("crop_nonzero") > geometric[0]:
        raise MedsightError(path, "preprocessing step 'crop_nonzero' must come before "
                                  f"{names[geometric[0]]!r} (its box is in the source grid)")
    return steps


def step_settings(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The switched-on steps with their options only: what the cache key, export.json and GET /model record."""
    return [{k: v for k, v in step.items() if k not in ("enabled", "reason")} for step in enabled_steps(plan)]


# The plan entries a task-run step applies: recorded with the step, so that a record stands without plan.json.
STEP_PLAN_KEYS = {"resample": ("target_spacing",), "resize": ("input_size",), "normalize": ("normalization",),
                  "scale": ("scale",)}


def preprocessing_record(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """What a raw image goes through before the network, in order: each switched-on step with its options and
    the plan values it applies (target spacing, input size, normalisation statistics, scale)."""
    return [{**step, **{key: plan[key] for key in STEP_PLAN_KEYS.get(step["name"], ()) if key in plan}}
            for step in step_settings(plan)]


def network_input(plan: dict[str, Any], channels: int | None = None) -> dict[str, Any]:
    """The network's input: channels and spatial size, and whether images are fed whole (resized to input_size)
    or in windows of patch_size (sliding windows at prediction)."""
    spatial = plan.get("input_size") or plan.get("patch_size")
    if spatial is None:
        raise MedsightError("plan.json", "the plan has neither input_size nor patch_size: the network's input "
                                         "size is unknown")
    return {"channels": int(plan.get("in_channels") or channels or 1), "size": [int(n) for n in spatial],
            "fed": "whole" if plan.get("input_size") else "windows"}


def options_of(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in ENTRY_KEYS}


def as_numpy(image: Any) -> np.ndarray:
    return image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)


def as_float_tensor(image: Any) -> torch.Tensor:
    """A float32 torch tensor of an array or tensor (no copy when it already is one)."""
    if isinstance(image, torch.Tensor):
        return image.float()
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))


def apply_steps(image: np.ndarray, spacing: Sequence[float], plan: dict[str, Any],
                task_steps: dict[str, Callable[[Prepared], Prepared]], label: np.ndarray | None = None) -> Prepared:
    """Run the plan's steps in order on a raw (C, *spatial) image (and label); the task runs its own steps."""
    state = Prepared(image, tuple(float(s) for s in spacing), label)
    for entry in enabled_steps(plan):
        name = entry["name"]
        if name == "crop_nonzero":
            box = nonzero_box(as_numpy(state.image))
            state = replace(state, image=state.image[(slice(None), *box)],
                            label=None if state.label is None else state.label[box],
                            history=(*state.history, Cropped(box, tuple(state.image.shape[1:]))))
        elif name in INTENSITY_STEPS:  # intensities only: the label is left alone
            state = replace(state, image=INTENSITY_STEPS[name](as_numpy(state.image), state.spacing, **options_of(entry)))
        elif name in GEOMETRIC:
            before, recorded = tuple(state.image.shape[1:]), len(state.history)
            state = task_steps[name](state)
            if len(state.history) == recorded:  # the step did not record itself: its shapes say what it did
                state = replace(state, history=(*state.history, Resized(before, tuple(state.image.shape[1:]))))
        else:
            state = task_steps[name](state)
    return state
