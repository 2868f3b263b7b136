"""What lets the models train on full-size graphs (ml-25m and the complete IMDb people graph)
without PyG's compiled samplers: sampled neighbourhoods for training steps, and a memory check that
refuses a dense model up front instead of dying in it (the HGT layer itself runs in destination
chunks: :mod:`models.hgt_conv`).

* :func:`sample_in_edges`: each relation keeps about ``fanout`` random incoming edges per node,
  fresh every step (GraphSAGE-style neighbour sampling on the whole node set, `"Inductive
  Representation Learning on Large Graphs" <https://arxiv.org/abs/1706.02216>`_). An HGT step
  keeps per node and per source of each relation, plus indices per edge
  (:func:`hgt_step_bytes`), so capping in-edges caps the step's sources and its time.
* :func:`require_memory`: one line naming the model, the size and the memory it would need.
* :func:`return_freed_memory`: hands the C heap's free pages back to the system between steps.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from pathlib import Path

import torch
from torch import Tensor

from cinegraph.errors import CinegraphError

EdgeDict = dict[tuple[str, str, str], Tensor]


def available_bytes(device: torch.device | str) -> int:
    """Memory a new allocation can take: free GPU memory, or the host's ``MemAvailable``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise CinegraphError("/proc/meminfo: no MemAvailable line")  # pragma: no cover


_LIBC_NAME = ctypes.util.find_library("c")
_MALLOC_TRIM = getattr(ctypes.CDLL(_LIBC_NAME), "malloc_trim", None) if _LIBC_NAME else None  # glibc only
_last_return = [0.0]


def return_freed_memory(every_s: float = 1.0) -> None:
    """Give the pages glibc holds free back to the system, at most once every ``every_s`` seconds.

    Training steps allocate tensors whose sizes change from step to step (the movies hidden from
    the content map, sampled neighbourhoods); glibc keeps the freed blocks for requests they fit,
    and its heap then only grows (the content-map fit reached 6-8 GB on ml-latest-small, 1-1.4 GB
    with this). Spacing the calls keeps the cost of faulting the pages in again negligible."""
    now = time.perf_counter()
    if _MALLOC_TRIM is None or now - _last_return[0] < every_s:
        return
    _MALLOC_TRIM(0)
    _last_return[0] = now


def require_memory(what: str, need: float, device: torch.device | str, hint: str = "") -> None:
    """Raise a one-line :class:`CinegraphError` when ``need`` bytes exceed what ``device`` has."""
    have = available_bytes(device)
    if need > have:
        raise CinegraphError(
            f"{what} needs about {need / 2**30:.1f} GB, more than the {have / 2**30:.1f} GB "
            f"available on {torch.device(device).type}" + (f"; {hint}" if hint else "")
        )


def hgt_step_bytes(edge_index_dict: EdgeDict, num_nodes: dict[str, int], num_layers: int, hidden_dim: int) -> int:
    """An upper bound of what one full-graph HGT training step keeps for its backward pass
    (:class:`~cinegraph.models.hgt_conv.ChunkedHGTConv`), per layer: six ``D``-float rows per
    node (query, aggregate, output transforms, dropout), three per source of each relation
    (its input, key and value) and 32 bytes of indices per edge."""
    row = 4 * hidden_dim
    per_layer = 6 * row * sum(num_nodes.values())
    for (src, _, _), e in edge_index_dict.items():
        per_layer += 32 * e.size(1) + 3 * row * min(e.size(1), num_nodes[src])
    return num_layers * per_layer


def sample_in_edges(edge_index_dict: EdgeDict, fanout: int, generator: torch.Generator) -> EdgeDict:
    """Each relation's edges ``[2, E]`` (source, destination row), each kept with probability
    ``min(1, fanout / in-degree of its destination in the relation)``: about ``fanout`` sampled
    in-neighbours per node and relation, all of them for nodes with fewer. O(E), no sort."""
    if fanout < 1:
        raise ValueError(f"fanout={fanout} must be >= 1")
    out = {}
    for rel, edges in edge_index_dict.items():
        deg = torch.bincount(edges[1])  # [N_dst] in-degree within the relation
        p = (fanout / deg[edges[1]].float()).clamp(max=1.0)  # [E]
        keep = torch.rand(edges.size(1), generator=generator).to(edges.device) < p
        out[rel] = edges[:, keep]
    return out
