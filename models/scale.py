"""What lets the models train on full-size graphs (ml-25m and the complete IMDb people graph)
without PyG's compiled samplers: sampled neighbourhoods for training steps, destination chunks for
exact inference, and a memory check that refuses a dense model up front instead of dying in it.

* :func:`sample_in_edges`: each relation keeps about ``fanout`` random incoming edges per node,
  fresh every step (GraphSAGE-style neighbour sampling on the whole node set, `"Inductive
  Representation Learning on Large Graphs" <https://arxiv.org/abs/1706.02216>`_). HGT's memory
  is per edge (keys, queries, values and messages of every edge are kept for the backward pass,
  about 1.5 KB per edge and layer at 64 dimensions), so capping edges caps the step.
* :func:`require_memory`: one line naming the model, the size and the memory it would need.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from cinegraph.errors import CinegraphError

EdgeDict = dict[tuple[str, str, str], Tensor]
HGT_BYTES_PER_EDGE = 1536  # per edge and layer at hidden_dim 64: 6 float tensors of [E, 64] kept


def available_bytes(device: torch.device | str) -> int:
    """Memory a new allocation can take: free GPU memory, or the host's ``MemAvailable``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise CinegraphError("/proc/meminfo: no MemAvailable line")  # pragma: no cover


def require_memory(what: str, need: float, device: torch.device | str, hint: str = "") -> None:
    """Raise a one-line :class:`CinegraphError` when ``need`` bytes exceed what ``device`` has."""
    have = available_bytes(device)
    if need > have:
        raise CinegraphError(
            f"{what} needs about {need / 2**30:.1f} GB, more than the {have / 2**30:.1f} GB "
            f"available on {torch.device(device).type}" + (f"; {hint}" if hint else "")
        )


def hgt_step_bytes(edge_index_dict: EdgeDict, num_layers: int, hidden_dim: int) -> int:
    """What one full-graph HGT training step keeps for its backward pass, edges only."""
    edges = sum(int(e.size(1)) for e in edge_index_dict.values())
    return edges * num_layers * HGT_BYTES_PER_EDGE * hidden_dim // 64


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
