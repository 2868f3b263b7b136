"""Combining task losses: fixed weights, or homoscedastic-uncertainty weights learned alongside."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor, nn

from cinegraph.models.config import Task

WeightingMode = Literal["fixed", "uncertainty"]


class TaskWeighting(nn.Module):
    r"""Weighted sum of named task losses, either with fixed weights or with the homoscedastic
    uncertainty weighting of `"Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
    Geometry and Semantics" <https://arxiv.org/abs/1705.07115>`_ (Kendall et al., 2018):

    .. math::
        \mathcal{L}_{\text{fixed}} = \sum_t w_t \mathcal{L}_t, \qquad
        \mathcal{L}_{\text{unc}} = \sum_t w_t \left(\tfrac{1}{2} e^{-s_t} \mathcal{L}_t
        + \tfrac{1}{2} s_t\right),

    where :math:`s_t = \log \sigma_t^2` is learned per task (initialised at 0, i.e.
    :math:`\sigma_t = 1`). In uncertainty mode the fixed weights still act as priors, so a zero
    weight switches a task off in both modes (the single-task ablation). Tasks whose weight is zero
    are skipped entirely, so their loss need not even be computed.

    Args:
        weights (Mapping[Task, float]): Weight :math:`w_t` per task name.
        mode (str, optional): ``"fixed"`` or ``"uncertainty"``. (default: ``"fixed"``)

    Shapes:
        - **input:** a dict of scalar losses, keyed by task name
        - **output:** a scalar
    """

    def __init__(self, weights: Mapping[Task, float], mode: WeightingMode = "fixed") -> None:
        super().__init__()
        if mode not in ("fixed", "uncertainty"):
            raise ValueError(f"mode={mode!r} is not 'fixed' or 'uncertainty'")
        bad = {k: w for k, w in weights.items() if w < 0}
        if bad:
            raise ValueError(f"task weights must be >= 0, got {bad}")
        self.mode = mode
        self.weights = {k: float(w) for k, w in weights.items()}
        self.log_vars = nn.ParameterDict(
            {k: nn.Parameter(torch.zeros(())) for k in self.active} if mode == "uncertainty" else {}
        )

    @property
    def active(self) -> list[Task]:
        """Tasks with a positive weight, in the order given."""
        return [k for k, w in self.weights.items() if w > 0]

    def forward(self, losses: dict[str, Tensor]) -> Tensor:
        missing = [k for k in self.active if k not in losses]
        if missing:
            raise ValueError(f"losses lack the weighted tasks {missing}; got {sorted(losses)}")
        total = torch.zeros((), device=next(iter(losses.values())).device)
        for k in self.active:
            if self.mode == "fixed":
                total = total + self.weights[k] * losses[k]
            else:
                s = self.log_vars[k]
                total = total + self.weights[k] * 0.5 * (torch.exp(-s) * losses[k] + s)
        return total

    def sigmas(self) -> dict[Task, float]:
        """Learned :math:`\\sigma_t` per task (1.0 throughout in fixed mode), for the logs."""
        return {
            k: float(torch.exp(0.5 * self.log_vars[k].detach())) if k in self.log_vars else 1.0 for k in self.active
        }

    def __repr__(self) -> str:
        ws = ", ".join(f"{k}={w:g}" for k, w in self.weights.items())
        return f"{self.__class__.__name__}(mode={self.mode}, {ws})"
