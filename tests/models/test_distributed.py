"""``cinegraph train --distributed``: processes under torchrun train the model one process trains."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cinegraph.flows.cli import main
from cinegraph.models import distributed
from tests.models.tiny import TINY

TOLERANCE = 1e-4  # validation ndcg@20 and map: only the order of floating-point sums differs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        batch = torch.arange(7)
        weight = torch.nn.Parameter(torch.zeros(3))
        (weight * (rank + 1.0)).sum().backward()  # gradient 1 on rank 0, 2 on rank 1
        distributed.average_gradients([weight])
        losses = distributed.mean({"loss": float(rank)})
        got = distributed.on_main(lambda: {"rank": distributed.rank()})
        saved = {"shard": distributed.shard(batch), "grad": weight.grad, "loss": losses["loss"], "main": got}
        torch.save(saved, f"{out}/{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_shards_gradients_and_metrics_across_two_processes(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    assert r0["shard"].tolist() == [0, 1, 2, 3] and r1["shard"].tolist() == [4, 5, 6]
    assert torch.equal(r0["grad"], torch.full((3,), 1.5)) and torch.equal(r1["grad"], r0["grad"])
    assert r0["loss"] == r1["loss"] == 0.5
    assert r0["main"] == r1["main"] == {"rank": 0}  # process 0 computes, every process receives


def test_outside_a_process_group_everything_is_the_identity() -> None:
    batch = torch.arange(5)
    assert distributed.shard(batch) is batch and distributed.world_size() == 1 and distributed.is_main()
    assert distributed.mean({"loss": 2.0}) == {"loss": 2.0} and distributed.on_main(lambda: 3) == 3


def test_distributed_without_torchrun_is_a_one_line_error(
    tiny_snapshot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {k: os.environ.pop(k) for k in ("RANK", "WORLD_SIZE") if k in os.environ}
    try:
        assert main(["train", "--distributed", "--snapshot", str(tiny_snapshot), "--out", str(tmp_path)]) == 2
    finally:
        os.environ.update(env)
    assert "launch with torchrun --nproc-per-node N" in capsys.readouterr().err


def test_two_gloo_processes_match_one_process(tiny_snapshot: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY))
    args = ["train", "--snapshot", str(tiny_snapshot), "--config", str(config), "--out"]
    assert main([*args, str(tmp_path / "one")]) == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd = [*torchrun, "-m", "cinegraph.flows.cli", *args, str(tmp_path / "two"), "--distributed"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = (json.loads((tmp_path / run / "warm" / "results.json").read_text()) for run in ("one", "two"))
    assert one["processes"] == 1 and two["processes"] == 2
    for model, metrics in one["models"].items():
        for metric in ("valid_ndcg@20", "valid_map"):
            assert two["models"][model][metric]["mean"] == pytest.approx(metrics[metric]["mean"], abs=TOLERANCE)
        for a, b in zip(one["histories"][model], two["histories"][model], strict=True):
            assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)  # the shards' mean loss is the batch's
    assert {"gcn.pt", "hgt.pt", "fused.pt"} <= {p.name for p in (tmp_path / "two" / "warm" / "seed-0").iterdir()}
