"""The training settings the model tests share: every stage a few epochs on the tiny graph."""

from cinegraph.models.config import TrainConfig

TINY = {
    "hidden_dim": 16,
    "hgt_heads": 2,
    "fusion_heads": 2,
    "gcn_epochs": 6,
    "hgt_epochs": 4,
    "fusion_epochs": 4,
    "eval_every": 2,
    "batch_size": 256,
    "gcn_steps": 2,
    "num_threads": 1,
}
QUICK = TrainConfig(**{**TINY, "gcn_epochs": 2, "hgt_epochs": 2, "fusion_epochs": 2})  # two epochs a stage
