"""SimCLR under DDP: two gloo ranks gather each other's projections, so the loss and the gradient are those of
the global batch in one process (negatives from every rank, not only from a rank's own share)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

BATCH, FEATURES = 8, 6


def network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, 4))


def views() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(BATCH, FEATURES, generator=generator), torch.randn(BATCH, FEATURES, generator=generator)


def global_loss(model: nn.Module, first: torch.Tensor, second: torch.Tensor, across_ranks: bool) -> torch.Tensor:
    from monai.losses import ContrastiveLoss

    from medsight.tasks.pretraining.task import TEMPERATURE, gather_with_grad

    a, b = model(first), model(second)
    if across_ranks:
        a, b = gather_with_grad(a), gather_with_grad(b)
    return ContrastiveLoss(temperature=TEMPERATURE)(a, b)


def rank_main(rank: int, world: int, init_file: str, results: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = network()
        first, second = views()
        share = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
        loss = global_loss(model, first[share], second[share], across_ranks=True)
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters()]
        for g in grads:  # what DDP does with the gradients: the mean over ranks
            dist.all_reduce(g)
            g /= world
        results[rank] = (float(loss), [g.numpy() for g in grads])
    finally:
        dist.destroy_process_group()


def test_two_ranks_give_the_loss_and_gradient_of_the_global_batch(tmp_path):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(rank_main, args=(2, str(tmp_path / "rendezvous"), results), nprocs=2, join=True)
        results = dict(results)

    model = network()
    first, second = views()
    loss = global_loss(model, first, second, across_ranks=False)
    loss.backward()
    for rank in (0, 1):
        rank_loss, rank_grads = results[rank]
        assert abs(rank_loss - float(loss.detach())) < 1e-5
        for got, param in zip(rank_grads, model.parameters()):
            torch.testing.assert_close(torch.from_numpy(got), param.grad, atol=1e-5, rtol=1e-4)

    # a rank alone, without the other's negatives, has another loss: the gathering is what makes them agree
    alone = global_loss(network(), first[:BATCH // 2], second[:BATCH // 2], across_ranks=False)
    assert abs(float(alone.detach()) - float(loss.detach())) > 1e-3
