"""Early stopping on a validation score: the one loop every trained model goes through, the fused
model's stages (:func:`cinegraph.models.loop.fit`) and the embedding baselines alike. What an
epoch trains, what validation scores and what is kept of the best epoch are the caller's."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

EpochCallback = Callable[[str, dict[str, float]], None]  # (stage name, history row of the epoch)
Kept = TypeVar("Kept")


def early_stopping(
    name: str,
    train_epoch: Callable[[int], dict[str, float]],
    validate: Callable[[], dict[str, float]] | None,
    select: Callable[[dict[str, float]], float],
    keep: Callable[[int, float, dict[str, float]], Kept],
    *,
    epochs: int,
    eval_every: int,
    patience: int,
    on_epoch: EpochCallback | None = None,
) -> tuple[Kept, list[dict[str, float]]]:
    """Validate the start, then train up to ``epochs`` epochs, validating every ``eval_every``
    and at the last; stop after ``patience`` validations without a better ``select(metrics)``.

    Args:
        name: the stage or model, in log lines and ``on_epoch`` calls.
        train_epoch: trains epoch ``e`` (from 1), returns its mean losses (``"loss"`` first).
        validate: validation metrics of the model as it is now; ``None`` (a refit without a
            validation split, its epoch count chosen before) trains all ``epochs`` and keeps the last.
        select: validation metrics -> the score to maximise.
        keep: ``keep(epoch, score, metrics)`` snapshots the model: called at the start
            (epoch 0) and at every better score; the last snapshot is returned.
        on_epoch: called with ``(name, row)`` after every epoch (progress reporting).

    Returns the best snapshot and one history row per epoch: ``epoch``, the losses,
    ``seconds``, and on validated epochs ``valid_score`` and ``valid_<metric>``.
    """
    metrics = validate() if validate is not None else {}
    best = select(metrics) if validate is not None else float("nan")
    kept, bad = keep(0, best, metrics), 0
    history: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        row: dict[str, float] = {"epoch": epoch, **train_epoch(epoch)}
        row["seconds"] = time.perf_counter() - t0
        if validate is not None and (epoch % eval_every == 0 or epoch == epochs):
            metrics = validate()
            score = select(metrics)
            row.update({"valid_score": score, **{f"valid_{k}": v for k, v in metrics.items()}})
            if score > best:
                best, bad, kept = score, 0, keep(epoch, score, metrics)
            else:
                bad += 1
        history.append(row)
        losses = " ".join(
            f"{k} {v:.4f}"
            for k, v in row.items()
            if k not in ("epoch", "loss", "seconds") and not k.startswith("valid_")
        )
        valid = f" | valid {row['valid_score']:.4f} best {best:.4f}" if "valid_score" in row else ""
        log.log(
            logging.INFO if valid else logging.DEBUG,
            "%s epoch %3d | loss %.4f (%s)%s | %.2fs",
            name,
            epoch,
            row["loss"],
            losses,
            valid,
            row["seconds"],
        )
        if on_epoch is not None:
            on_epoch(name, row)
        if bad >= patience:
            break
    if validate is None and history:
        kept = keep(len(history), best, {})
    return kept, history
