from __future__ import annotations

import math

import pytest
import torch

from cinegraph.models.task_weighting import TaskWeighting


def test_fixed_is_the_weighted_sum() -> None:
    w = TaskWeighting({"rec": 1.0, "genre": 0.5, "rating": 0.0})
    total = w({"rec": torch.tensor(2.0), "genre": torch.tensor(4.0)})  # rating not needed
    assert total.item() == pytest.approx(4.0)
    assert w.active == ["rec", "genre"]
    assert list(w.parameters()) == []


def test_uncertainty_starts_at_half_the_fixed_sum_and_learns_log_loss() -> None:
    w = TaskWeighting({"rec": 1.0, "genre": 2.0}, mode="uncertainty")
    losses = {"rec": torch.tensor(3.0), "genre": torch.tensor(0.5)}
    assert w(losses).item() == pytest.approx(0.5 * (3.0 + 2.0 * 0.5))
    opt = torch.optim.SGD(w.parameters(), lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        w(losses).backward()
        opt.step()
    # d/ds [e^{-s} L + s] = 0 at s = log L, i.e. sigma^2 = L
    assert w.log_vars["rec"].item() == pytest.approx(math.log(3.0), abs=1e-3)
    assert w.log_vars["genre"].item() == pytest.approx(math.log(0.5), abs=1e-3)
    assert w.sigmas()["rec"] == pytest.approx(math.sqrt(3.0), rel=1e-3)


def test_zero_weight_switches_a_task_off_in_both_modes() -> None:
    for mode in ("fixed", "uncertainty"):
        w = TaskWeighting({"rec": 1.0, "genre": 0.0}, mode=mode)
        assert w.active == ["rec"]
        expected = 1.0 if mode == "fixed" else 0.5
        assert w({"rec": torch.tensor(1.0)}).item() == pytest.approx(expected)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"weights": {"rec": -1.0}}, "must be >= 0"),
        ({"weights": {"rec": 1.0}, "mode": "gradnorm"}, "mode='gradnorm'"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TaskWeighting(**kwargs)


def test_missing_loss_and_repr() -> None:
    w = TaskWeighting({"rec": 1.0, "genre": 0.2}, mode="uncertainty")
    with pytest.raises(ValueError, match=r"lack the weighted tasks \['genre'\]"):
        w({"rec": torch.tensor(1.0)})
    assert repr(w) == "TaskWeighting(mode=uncertainty, rec=1, genre=0.2)"
