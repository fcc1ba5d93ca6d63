"""Mixup for classification (`"mixup": alpha` in plan.json): blended batches and the blended loss."""

import torch
import torch.nn.functional as F

from medsight.tasks.classification.task import EpochBatches, mix_batch


def constant_batch(n: int = 8) -> dict[str, torch.Tensor]:
    """Image i is filled with the value i and has label i, so a blend shows which pair made it."""
    images = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 1, 4, 4).clone()
    return {"image": images, "label": torch.arange(n)}


def test_a_mixed_image_is_the_weighted_blend_of_its_pair():
    batch = mix_batch(constant_batch(), 0.4, torch.Generator().manual_seed(3))
    lam = float(batch["mix_weight"])
    assert 0.5 <= lam <= 1.0
    assert torch.equal(batch["label"], torch.arange(8))
    assert sorted(batch["mix_label"].tolist()) == list(range(8))  # a permutation of the batch
    expected = lam * torch.arange(8.0) + (1 - lam) * batch["mix_label"].float()
    assert torch.allclose(batch["image"][:, 0, 0, 0], expected, atol=1e-6)


def test_the_same_generator_seed_gives_the_same_blend():
    a = mix_batch(constant_batch(), 0.4, torch.Generator().manual_seed(5))
    b = mix_batch(constant_batch(), 0.4, torch.Generator().manual_seed(5))
    c = mix_batch(constant_batch(), 0.4, torch.Generator().manual_seed(6))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mix_label"], b["mix_label"])
    assert not (torch.equal(a["mix_label"], c["mix_label"]) and torch.equal(a["mix_weight"], c["mix_weight"]))


def test_epoch_batches_mix_only_when_the_plan_asks():
    data = constant_batch(16)
    order = torch.arange(16)
    plain = list(EpochBatches(data["image"], data["label"], order, 8, None, torch.Generator().manual_seed(0)))
    assert all(set(b) == {"image", "label"} for b in plain)
    mixed = list(EpochBatches(data["image"], data["label"], order, 8, None, torch.Generator().manual_seed(0), mixup=0.4))
    assert all({"mix_label", "mix_weight"} <= set(b) for b in mixed)


def test_the_training_loss_is_blended_by_the_same_weight():
    from medsight.losses.classification import ClassificationLoss
    from medsight.tasks.classification.task import ClassificationTask

    task = ClassificationTask.__new__(ClassificationTask)
    task.device, task.loss = torch.device("cpu"), ClassificationLoss("ce")
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
    model = torch.nn.Identity()
    batch = {"image": logits, "label": torch.tensor([0, 2]), "mix_label": torch.tensor([1, 0]),
             "mix_weight": torch.tensor(0.7)}
    loss = task.training_step(model, batch)["loss"]
    by_hand = 0.7 * F.cross_entropy(logits, torch.tensor([0, 2])) + 0.3 * F.cross_entropy(logits, torch.tensor([1, 0]))
    assert torch.isclose(loss, by_hand)
    unmixed = task.training_step(model, {"image": logits, "label": torch.tensor([0, 2])})["loss"]
    assert torch.isclose(unmixed, F.cross_entropy(logits, torch.tensor([0, 2])))
