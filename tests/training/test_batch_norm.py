"""BatchNorm statistics recomputed for averaged weights: a cumulative mean over the batches given."""

from __future__ import annotations

import torch
import torch.nn as nn

from medsight.training.batch_norm import refresh_batch_norm


def test_running_statistics_are_the_mean_over_the_batches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model.eval()
    norm = model[1]
    norm.running_mean.fill_(7.0)  # stale statistics, as an average of weights carries
    norm.running_var.fill_(9.0)
    batches = [torch.randn(8, 3) * (k + 1) + k for k in range(5)]
    seen = []
    assert refresh_batch_norm(model, iter(batches), lambda m, x: seen.append(m(x)), most=3)
    assert len(seen) == 3 and not model.training and norm.momentum == 0.1  # restored
    with torch.no_grad():
        features = [model[0](x) for x in batches[:3]]
    # momentum None: the running mean is the plain mean of the batch means, the variance of the unbiased ones
    expected_mean = torch.stack([f.mean(0) for f in features]).mean(0)
    expected_var = torch.stack([f.var(0, unbiased=True) for f in features]).mean(0)
    assert torch.allclose(norm.running_mean, expected_mean, atol=1e-5)
    assert torch.allclose(norm.running_var, expected_var, atol=1e-5)


def test_a_model_without_batch_norm_is_left_alone():
    model = nn.Sequential(nn.Linear(3, 2), nn.GroupNorm(1, 2))
    calls = []
    assert not refresh_batch_norm(model, iter([torch.ones(2, 3)]), lambda m, x: calls.append(x))
    assert calls == []
