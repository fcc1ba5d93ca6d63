"""Transfer learning: start from another run's weights (--init), freeze the encoder, scale its learning rate.

Only tensors whose name and shape both match are loaded, so a head for another number of classes stays
new; what was loaded and skipped is said in one line and kept in RUN/init.json, which --resume reads back
to rebuild the same frozen set and optimiser groups without touching the source again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from medsight.errors import MedsightError
from medsight.jsonio import load_json, save_json
from medsight.models import get_entry
from medsight.models.registry import is_head
from medsight.run import RunFolder, load_weights

SHOWN = 4  # names listed in the one-line summary before "and N more"


def init_weights_path(source: str | Path) -> Path:
    """The safetensors file behind --init: RUN/model.safetensors (of a run folder or a packed run) or the file
    itself; anything else is refused."""
    from medsight.packed import run_or_unpacked

    path = run_or_unpacked(source)
    if path.is_dir():
        weights = RunFolder(path).weights_path
        if not weights.is_file():
            raise MedsightError(path, "cannot initialise from it: no model.safetensors (train or pretrain it first)")
        return weights.resolve()
    if not path.is_file():
        raise MedsightError(path, "cannot initialise from it: no such run folder or file")
    if path.suffix != ".safetensors":
        raise MedsightError(path, "is not a .safetensors file; --init takes a run folder, a packed run or a .safetensors file "
                                  "(medsight never unpickles weights)")
    return path.resolve()


def encoder_names(model: nn.Module, model_name: str) -> list[str]:
    """Parameter names of the model's encoder: everything the registry does not mark as head or decoder."""
    entry = get_entry(model_name)
    if not entry.head:
        raise MedsightError(None, f"model {model_name!r} does not say which part is its encoder; --freeze encoder "
                                  f"works with models whose registry entry names their head")
    return [name for name, _ in model.named_parameters() if not is_head(entry, name)]


@dataclass
class InitRecord:
    """What --init did: the source, the tensors loaded, those skipped (and why), the frozen encoder."""

    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # model tensor -> reason it kept its fresh value
    unused: list[str] = field(default_factory=list)  # source tensors with no place in this model
    frozen: list[str] = field(default_factory=list)
    lr_scale: float = 1.0
    table: str = ""  # the tensor-by-tensor compatibility, printed before training

    def summary(self) -> str:
        """One or two lines for the console."""
        total = len(self.loaded) + len(self.skipped)
        line = f"init: loaded {len(self.loaded)} of {total} tensors from {self.source}"
        if self.skipped:
            line += f"; kept new: {shorten(sorted(self.skipped), self.skipped)}"
        if self.unused:
            line += f"; unused from the source: {shorten(self.unused)}"
        notes = [f"{len(self.frozen)} encoder parameters frozen"] if self.frozen else []
        if self.lr_scale != 1.0:
            notes.append(f"{'the other ' if self.frozen else ''}loaded tensors train at {self.lr_scale:g} x the learning rate")
        return line + ("\ninit: " + "; ".join(notes) if notes else "")

    def save(self, path: Path) -> None:
        save_json(path, self.__dict__)

    @classmethod
    def load(cls, path: Path) -> "InitRecord":
        raw = load_json(path)
        try:
            return cls(**raw)
        except TypeError as exc:
            raise MedsightError(path, f"is not an init record ({exc})") from None


def shorten(names: list[str], reasons: dict[str, str] | None = None) -> str:
    shown = [f"{n} ({reasons[n]})" if reasons else n for n in names[:SHOWN]]
    return ", ".join(shown) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def aligned_names(own: dict[str, torch.Tensor], source: dict[str, torch.Tensor]) -> dict[str, str]:
    """Model name -> source name for tensors of equal shape: the same name, or one prefix swapped for another.

    The prefix swap lets detectors whose backbones sit under different module paths (RetinaNet's
    ``network.feature_extractor.`` vs Faster R-CNN's ``feature_extractor.``) share them; it is used only
    when it matches more tensors than plain names do.
    """
    def matches(strip: str, add: str) -> dict[str, str]:
        out = {}
        for name, tensor in own.items():
            if not name.startswith(add):
                continue
            other = strip + name[len(add):]
            if other in source and source[other].shape == tensor.shape:
                out[name] = other
        return out

    best = matches("", "")
    prefixes = lambda names: {".".join(n.split(".")[:k]) + "." for n in names for k in range(1, 3)} | {""}
    for add in prefixes(own):
        for strip in prefixes(source):
            if add != strip:
                candidate = matches(strip, add)
                if len(candidate) > len(best):
                    best = candidate
    return best


def load_matching(model: nn.Module, source_path: Path, shown_as: str | None = None) -> InitRecord:
    """Copy every source tensor whose name (or aligned name) and shape match into model.

    shown_as names the source in the compatibility table (the run or packed file the user gave).
    """
    source = load_weights(source_path)
    own = model.state_dict()
    pairs = aligned_names(own, source)
    with torch.no_grad():
        for name, other in pairs.items():
            own[name].copy_(source[other].to(own[name].dtype))
    skipped = {}
    for name, tensor in own.items():
        if name not in pairs:
            skipped[name] = (f"shape {tuple(tensor.shape)}, source {tuple(source[name].shape)}"
                             if name in source else "not in the source")
    used = set(pairs.values())
    record = InitRecord(str(source_path), loaded=sorted(pairs), skipped=skipped,
                        unused=sorted(k for k in source if k not in used and k not in own))
    from medsight.training.compatibility import compatibility, format_compatibility

    record.table = format_compatibility(compatibility(own, source, pairs), shown_as or str(source_path))
    return record


def freeze(model: nn.Module, names: list[str]) -> None:
    """Stop gradients to the named parameters, and keep batch-norm statistics whose module is frozen fixed."""
    wanted = set(names)
    for name, parameter in model.named_parameters():
        if name in wanted:
            parameter.requires_grad_(False)
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and own and not any(p.requires_grad for p in own):
            # the loop calls model.train() every epoch; this puts the frozen statistics back in eval mode each forward
            module.register_forward_pre_hook(keep_statistics)


def keep_statistics(module: nn.Module, inputs: Any) -> None:
    """Forward pre-hook: normalise with the stored statistics and leave them unchanged."""
    module.training = False


def parameter_groups(model: nn.Module, pretrained: list[str], lr_scale: float) -> list[dict[str, Any]]:
    """AdamW groups: trainable new parameters at the full rate, pretrained ones at lr_scale (the loop reads it)."""
    wanted = set(pretrained)
    new, old = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (old if name in wanted else new).append(parameter)
    groups = [{"params": new, "lr_scale": 1.0}, {"params": old, "lr_scale": lr_scale}]
    return [g for g in groups if g["params"]]


def prepare_transfer(model: nn.Module, config: Any, run: RunFolder, resuming: bool, is_main: bool,
                     say: Callable[[str], None]) -> list[dict[str, Any]] | None:
    """Apply config.init / freeze / init_lr_scale to a new model; the optimiser groups, or None for plain training.

    On a resume from a checkpoint the weights come from the checkpoint: only the frozen set and the groups
    are rebuilt, from RUN/init.json, so the optimiser state lines up with them.
    """
    if not config.init:
        if config.freeze != "none":
            raise MedsightError(None, "--freeze encoder needs --init (a pretrained encoder to keep)")
        return None
    record_path = run.path / "init.json"
    if resuming:
        record = InitRecord.load(record_path)
    else:
        record = load_matching(model, init_weights_path(config.init), shown_as=str(config.init))
        if not record.loaded:
            raise MedsightError(config.init, f"has no tensor that fits the model {config.model!r} (no name and shape match)")
        record.lr_scale = float(config.init_lr_scale)
        if config.freeze == "encoder":
            loaded = set(record.loaded)
            record.frozen = [n for n in encoder_names(model, config.model) if n in loaded]
        if is_main:
            record.save(record_path)
        say(record.table)
        say(record.summary())
    freeze(model, record.frozen)
    return parameter_groups(model, record.loaded, record.lr_scale)
