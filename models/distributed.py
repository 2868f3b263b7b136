"""Data-parallel training over the processes ``torchrun`` starts (``cinegraph train --distributed``).

Every process holds the whole graph and the same model (same seed, same initialisation) and draws
the same random numbers; each computes the losses of its shard of every batch, and the gradients
are averaged across processes before each optimizer step. With equal shards that is the
gradient of the whole batch, so N processes train the model one process would, up to the order
of floating-point sums. Process 0 evaluates (the others receive its metrics, so early stopping
decides alike everywhere) and writes every file.

This is DistributedDataParallel's all-reduce done explicitly after ``backward()``: the models'
losses read heads (rating, genres) outside ``forward()``, which DDP's reducer does not support.
Outside a process group every function here is the single-process identity.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from cinegraph.errors import CinegraphError

T = TypeVar("T")


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process writes files and evaluates: process 0, or the only one."""
    return rank() == 0


@contextmanager
def process_group(device: str) -> Iterator[None]:
    """Join the process group ``torchrun`` set up (RANK, WORLD_SIZE, MASTER_ADDR in the
    environment): gloo on CPU, nccl on CUDA with one GPU per local process."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise CinegraphError(
            "--distributed: RANK and WORLD_SIZE are not set; launch with "
            "torchrun --nproc-per-node N -m cinegraph.flows.cli train --distributed ..."
        )
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if device == "cuda" else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def shard(t: Tensor) -> Tensor:
    """This process's part of a batch ``[B, ...]`` (contiguous, sizes differ by at most one)."""
    return t.tensor_split(world_size())[rank()] if active() else t


def average_gradients(params: Iterable[Tensor]) -> None:
    """Replace each gradient by its mean over the processes, in one all-reduce."""
    if not active():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])  # [P]
    dist.all_reduce(flat)
    flat /= world_size()
    for g, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        g.copy_(part.view_as(g))


def mean(values: dict[str, float]) -> dict[str, float]:
    """Each value averaged over the processes (epoch losses of the shards)."""
    if not active() or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return dict(zip(values, (t / world_size()).tolist(), strict=True))


def on_main(fn: Callable[[], T]) -> T:
    """``fn()`` computed by process 0 and received by every process."""
    if not active():
        return fn()
    box = [fn() if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]
