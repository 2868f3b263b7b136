"""Training curves of one run as a PNG."""

from __future__ import annotations

from pathlib import Path


def plot_curves(history: list[dict[str, float]], title: str, path: Path) -> None:
    """Training losses and the validation score per epoch, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.5))
    epochs = [row["epoch"] for row in history]
    for key in ("loss", "rec", "genre", "rating"):
        if history and key in history[0]:
            ax_loss.plot(epochs, [row[key] for row in history], label=key)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title=f"{title}: loss")
    for key in ("valid_ndcg@20", "valid_macro_f1"):
        pts = [(row["epoch"], row[key]) for row in history if key in row]
        if pts:
            ax_val.plot(*zip(*pts, strict=True), marker="o", label=key.removeprefix("valid_"))
    ax_val.set(xlabel="epoch", ylabel="validation", title=f"{title}: validation")
    for ax in (ax_loss, ax_val):
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
