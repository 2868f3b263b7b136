"""Leak-free model input: features, recommendation and genre splits, held-out pairs removed.

``prepare_data(tables, config, seed)`` turns snapshot tables into a :class:`PreparedData`:

* **Recommendation.** Positives are ratings ``>= positive_threshold``; each user's positives are
  split 80/10/10 at random (or by time, the latest ones held out). The model input graph keeps every
  RATED edge except the validation and test pairs, so message passing sees training positives and
  non-positive ratings only; TAGGED edges of held-out pairs are dropped too (a tag shows the user
  watched the movie). Rating strength is kept as the edge weight (interaction intensity).
* **Item cold start** (``protocol="cold-items"``). A seeded ``cold_item_frac`` of the movies
  with positives are new: every RATED and TAGGED edge of theirs leaves the model input and their
  positives are split at random between validation and test (the other movies keep the per-user
  split above, drawn exactly as in the warm protocol). Their IMDb edges, features and genre edges
  stay: content is known at release. ``cold_items`` marks them.
* **Classification.** MovieLens genres are multi-label targets; movies with at least one genre are
  split 60/20/20. The graph keeps IN_GENRE edges of training movies only, and no genre property
  is ever a feature, so no validation or test movie's genres are reachable from the input.
* **Features.** ``graph[label].x`` for every node type (width 0 where a type has none): Movie gets
  year, runtime, log votes, IMDb rating, each standardised with a missing-value flag; User gets
  demographics where the MovieLens variant has them. Models add learned embeddings for all types.

``include_imdb=False`` gives the MovieLens-only ablation: no Person nodes, none of
``schema.IMDB_EDGE_TYPES`` and no IMDb movie features.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from cinegraph.errors import CinegraphError
from cinegraph.graph_store.pyg import build_hetero_data
from cinegraph.models.config import DataConfig
from cinegraph.schema import (
    DST,
    EDGE_TYPES,
    GENRE,
    IMDB_EDGE_TYPES,
    IMDB_MOVIE_FEATURES,
    IN_GENRE,
    MOVIE,
    MOVIELENS_MOVIE_FEATURES,
    NO_GENRES,
    NODE_TYPES,
    PERSON,
    RATED,
    RATING,
    TAGGED,
    TIMESTAMP,
    USER,
    USER_CATEGORICAL_FEATURES,
    USER_NUMERIC_FEATURES,
    EdgeType,
)

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
LOG_SCALED = (IMDB_MOVIE_FEATURES[1],)  # vote counts enter as log1p


@dataclass
class PreparedData:
    """Everything a model and the evaluation harness need, on one device.

    ``train_edges`` / ``valid_edges`` / ``test_edges`` are ``[2, E]`` (user index, movie index)
    positives. ``seen_edges`` are the pairs with a RATED edge in ``graph``; ranking never
    recommends them (they can never be validation or test positives). ``train_weight`` is the
    rating of each RATED edge of ``graph`` divided by the highest rating, in (0, 1]; it is also
    stored as ``edge_weight`` on both RATED directions.
    """

    graph: HeteroData
    num_users: int
    num_movies: int
    genre_names: list[str]
    train_edges: Tensor  # [2, E_train]
    valid_edges: Tensor  # [2, E_valid]
    test_edges: Tensor  # [2, E_test]
    train_weight: Tensor  # [E_graph_rated]
    seen_edges: Tensor  # [2, E_graph_rated]
    cold_items: Tensor  # [num_movies] bool: new items of the cold-items protocol
    movie_tags: Tensor  # [2, T] (movie index, index in tag_names) of the input's TAGGED edges
    tag_names: list[str]
    genre_labels: Tensor  # [num_movies, num_genres] float 0/1
    genre_masks: dict[str, Tensor]  # split -> [num_movies] bool
    user_ids: list
    movie_ids: list
    config: DataConfig
    seed: int

    def edges(self, split: str) -> Tensor:
        """Positive (user, movie) pairs of ``split`` ("train", "valid" or "test")."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not one of {SPLITS}")
        return {"train": self.train_edges, "valid": self.valid_edges, "test": self.test_edges}[split]

    def to(self, device: torch.device | str) -> PreparedData:
        """A copy with every tensor on ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), Tensor | HeteroData)
        }
        moved["genre_masks"] = {k: v.to(device) for k, v in self.genre_masks.items()}
        return dataclasses.replace(self, **moved)


def _without_no_genres(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Drop the "(no genres listed)" placeholder should a snapshot carry it."""
    tables = dict(tables)
    if GENRE.label in tables:
        t = tables[GENRE.label]
        tables[GENRE.label] = t.filter(pc.not_equal(t.column(GENRE.key), NO_GENRES))
    if IN_GENRE.rel in tables:
        t = tables[IN_GENRE.rel]
        tables[IN_GENRE.rel] = t.filter(pc.not_equal(t.column(DST), NO_GENRES))
    return tables


def _split_per_user(users: np.ndarray, order: np.ndarray, valid_frac: float, test_frac: float) -> np.ndarray:
    """Label each positive 0 (train), 1 (valid) or 2 (test), per user.

    Within a user, positives with the largest ``order`` go to test, the next ones to validation.
    A user with ``n`` positives gets ``round(n * test_frac)`` test and ``round(n * valid_frac)``
    validation positives, always keeping at least one for training.
    """
    if users.size == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.lexsort((-order, users))  # by user, then order descending
    u_sorted = users[idx]
    counts = np.bincount(users)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(idx.size) - start[u_sorted]
    n = counts[u_sorted]
    n_test = np.minimum(np.floor(n * test_frac + 0.5), n - 1)
    n_valid = np.minimum(np.floor(n * valid_frac + 0.5), n - 1 - n_test)
    labels_sorted = np.where(rank < n_test, 2, np.where(rank < n_test + n_valid, 1, 0))
    labels = np.empty_like(labels_sorted)
    labels[idx] = labels_sorted
    return labels


def _cold_items(movies: np.ndarray, num_movies: int, frac: float, seed: int) -> Tensor:
    """[num_movies] bool: a seeded ``frac`` of the movies among ``movies`` (those with positives)
    drawn as new items; its own random stream, so the warm split's draws are unchanged."""
    candidates = np.unique(movies)
    n = round(candidates.size * frac)
    picked = np.random.default_rng([seed, 2]).choice(candidates, size=n, replace=False)
    cold = torch.zeros(num_movies, dtype=torch.bool)
    cold[torch.from_numpy(picked)] = True
    return cold


def _movie_tags(table: pa.Table | None, movies: Tensor, keep: Tensor) -> tuple[Tensor, list[str]]:
    """(movie index, tag index) pairs ``[2, T]`` of the kept TAGGED rows (edge order is table row
    order), tags lower-cased and stripped, and the tag vocabulary."""
    if table is None or table.num_rows == 0 or "tag" not in table.column_names:
        return torch.zeros(2, 0, dtype=torch.long), []
    text = [(t or "").strip().lower() for t, k in zip(table.column("tag").to_pylist(), keep.tolist(), strict=True) if k]
    names = sorted({t for t in text if t})
    index = {t: i for i, t in enumerate(names)}
    rows = [(int(m), index[t]) for m, t in zip(movies[keep].tolist(), text, strict=True) if t]
    pairs = torch.tensor(rows, dtype=torch.long).t() if rows else torch.zeros(2, 0, dtype=torch.long)
    return pairs.reshape(2, -1), names


def _standardise_with_flags(columns: list[Tensor]) -> Tensor:
    """[N, 2F]: each column standardised (missing -> 0) followed by its missing flag."""
    out = []
    for col in columns:
        missing = torch.isnan(col)
        present = col[~missing]
        mean = present.mean() if present.numel() else torch.tensor(0.0)
        std = present.std() if present.numel() > 1 else torch.tensor(1.0)
        std = std if std > 0 else torch.tensor(1.0)
        out += [((col - mean) / std).masked_fill(missing, 0.0), missing.float()]
    return torch.stack(out, dim=1) if out else torch.zeros(0, 0)


def _movie_features(full: HeteroData, include_imdb: bool) -> Tensor:
    names = MOVIELENS_MOVIE_FEATURES + (IMDB_MOVIE_FEATURES if include_imdb else ())
    store = full[MOVIE.label]
    columns = []
    for name in names:
        col = store[name] if name in store else torch.full((store.num_nodes,), float("nan"))
        columns.append(torch.log1p(col.clamp(min=0)) if name in LOG_SCALED else col)
    return _standardise_with_flags(columns)  # [num_movies, 2F]


def _user_features(table: pa.Table | None, num_users: int) -> Tensor:
    """One-hot gender/occupation and standardised age where present; [num_users, 0] otherwise."""
    parts: list[Tensor] = []
    if table is not None:
        for name in USER_CATEGORICAL_FEATURES:
            if name not in table.column_names or table.column(name).null_count == table.num_rows:
                continue
            values = table.column(name).to_pylist()
            vocab = sorted({v for v in values if v is not None})
            onehot = torch.zeros(num_users, len(vocab))
            for i, v in enumerate(values):
                if v is not None:
                    onehot[i, vocab.index(v)] = 1.0
            parts.append(onehot)
        numeric = [
            torch.tensor(table.column(n).cast(pa.float64()).to_numpy(zero_copy_only=False)).float()
            for n in USER_NUMERIC_FEATURES
            if n in table.column_names and table.column(n).null_count < table.num_rows
        ]
        if numeric:
            parts.append(_standardise_with_flags(numeric))
    return torch.cat(parts, dim=1) if parts else torch.zeros(num_users, 0)


def _pair_keys(edge_index: Tensor, num_movies: int) -> np.ndarray:
    return (edge_index[0] * num_movies + edge_index[1]).numpy()


def _filter_edges(graph: HeteroData, et: EdgeType, keep: Tensor) -> None:
    """Keep the masked edges of ``et`` and of its reverse, with their attributes."""
    for t in (et.triplet, et.reverse_triplet):
        store = graph[t]
        n = store.num_edges
        for key, value in list(store.items()):
            if isinstance(value, Tensor) and value.size(-1 if key == "edge_index" else 0) == n:
                store[key] = value[:, keep] if key == "edge_index" else value[keep]


def prepare_data(tables: dict[str, pa.Table], config: DataConfig, seed: int) -> PreparedData:
    """Build the leak-free model input and the seeded splits from snapshot tables."""
    if RATED.rel not in tables or tables[RATED.rel].num_rows == 0:
        raise CinegraphError(f"tables: no {RATED.rel} edges, nothing to recommend from")
    missing = {RATING, TIMESTAMP} - set(tables[RATED.rel].column_names)
    if missing:
        raise CinegraphError(f"tables: {RATED.rel} lacks columns {sorted(missing)}")
    tables = _without_no_genres(tables)
    node_types = NODE_TYPES if config.include_imdb else tuple(n for n in NODE_TYPES if n != PERSON)
    edge_types = EDGE_TYPES if config.include_imdb else tuple(e for e in EDGE_TYPES if e not in IMDB_EDGE_TYPES)
    graph, id_maps = build_hetero_data(tables, node_types, edge_types)
    num_users, num_movies = graph[USER.label].num_nodes, graph[MOVIE.label].num_nodes
    rec_rng = np.random.default_rng([seed, 0])
    genre_rng = np.random.default_rng([seed, 1])

    # --- recommendation split -------------------------------------------------------------
    rated = graph[RATED.triplet]
    rating = rated[RATING]
    positive = (rating >= config.positive_threshold).numpy()
    pos_edges = np.flatnonzero(positive)
    _, first = np.unique(_pair_keys(rated.edge_index[:, pos_edges], num_movies), return_index=True)
    if first.size < pos_edges.size:  # one positive per pair, or a pair could land in two splits
        log.warning("%d repeated positive pairs kept once", pos_edges.size - first.size)
        positive[pos_edges[np.setdiff1d(np.arange(pos_edges.size), first)]] = False
    pos_index = rated.edge_index[:, torch.from_numpy(positive)]  # [2, P]
    users = pos_index[0].numpy()
    if config.split == "random":
        order = rec_rng.random(users.size)
    else:
        ts = np.nan_to_num(rated[TIMESTAMP].numpy()[positive].astype(np.float64), nan=-np.inf)
        order = np.empty(users.size, dtype=np.int64)  # time rank, ties broken by movie index
        order[np.lexsort((pos_index[1].numpy(), ts))] = np.arange(users.size)
    cold = torch.zeros(num_movies, dtype=torch.bool)
    if config.protocol == "cold-items":
        cold = _cold_items(pos_index[1].numpy(), num_movies, config.cold_item_frac, seed)
    new = cold[pos_index[1]].numpy()  # [P] positives of new items
    labels = np.zeros(users.size, dtype=np.int64)
    labels[~new] = _split_per_user(users[~new], order[~new], config.valid_frac, config.test_frac)
    labels[new] = 1 + (np.random.default_rng([seed, 3]).random(int(new.sum())) < 0.5)
    split = torch.from_numpy(labels)
    train_edges, valid_edges, test_edges = (pos_index[:, split == s] for s in range(3))

    held_out = np.concatenate([_pair_keys(valid_edges, num_movies), _pair_keys(test_edges, num_movies)])
    keep_rated = ~np.isin(_pair_keys(rated.edge_index, num_movies), held_out)
    _filter_edges(graph, RATED, torch.from_numpy(keep_rated) & ~cold[rated.edge_index[1]])
    tagged = graph[TAGGED.triplet]
    keep_tagged = (
        torch.from_numpy(~np.isin(_pair_keys(tagged.edge_index, num_movies), held_out)) & ~cold[tagged.edge_index[1]]
    )  # [E_tagged], in table row order
    movie_tags, tag_names = _movie_tags(tables.get(TAGGED.rel), tagged.edge_index[1], keep_tagged)
    _filter_edges(graph, TAGGED, keep_tagged)
    rated = graph[RATED.triplet]
    train_weight = rated[RATING] / float(pc.max(tables[RATED.rel].column(RATING)).as_py())
    rated.edge_weight = train_weight
    graph[RATED.reverse_triplet].edge_weight = train_weight

    # --- genre split ------------------------------------------------------------------------
    in_genre = graph[IN_GENRE.triplet].edge_index
    genre_names = list(id_maps[GENRE.label])
    genre_labels = torch.zeros(num_movies, len(genre_names))
    genre_labels[in_genre[0], in_genre[1]] = 1.0
    labelled = torch.nonzero(genre_labels.sum(1) > 0).flatten().numpy()
    perm = torch.from_numpy(genre_rng.permutation(labelled))
    n_valid = round(perm.numel() * config.genre_valid_frac)
    n_test = round(perm.numel() * config.genre_test_frac)
    n_train = perm.numel() - n_valid - n_test
    genre_masks = {}
    for name, part in zip(SPLITS, perm.split([n_train, n_valid, n_test]), strict=True):
        mask = torch.zeros(num_movies, dtype=torch.bool)
        mask[part] = True
        genre_masks[name] = mask
    _filter_edges(graph, IN_GENRE, genre_masks["train"][in_genre[0]])

    # --- features: x for every node type, raw property tensors removed ----------------------
    movie_x = _movie_features(graph, config.include_imdb)
    for nt in node_types:
        store = graph[nt.label]
        for p in nt.properties:
            if p.name in store:
                del store[p.name]
        store.x = torch.zeros(store.num_nodes, 0)
    graph[MOVIE.label].x = movie_x
    graph[USER.label].x = _user_features(tables.get(USER.label), num_users)

    seen_edges = graph[RATED.triplet].edge_index
    log.info(
        "prepared data (%s): %d users, %d movies (%d new), positives train/valid/test "
        "%d/%d/%d, genre movies train/valid/test %d/%d/%d",
        config.protocol,
        num_users,
        num_movies,
        int(cold.sum()),
        train_edges.size(1),
        valid_edges.size(1),
        test_edges.size(1),
        n_train,
        n_valid,
        n_test,
    )
    return PreparedData(
        graph=graph,
        num_users=num_users,
        num_movies=num_movies,
        genre_names=genre_names,
        train_edges=train_edges,
        valid_edges=valid_edges,
        test_edges=test_edges,
        train_weight=train_weight,
        seen_edges=seen_edges,
        cold_items=cold,
        movie_tags=movie_tags,
        tag_names=tag_names,
        genre_labels=genre_labels,
        genre_masks=genre_masks,
        user_ids=id_maps[USER.label],
        movie_ids=id_maps[MOVIE.label],
        config=config,
        seed=seed,
    )


def export_split(data: PreparedData, out_dir: Path) -> dict[str, Path]:
    """Write ``train.csv``, ``valid.csv``, ``test.csv`` (original user and movie keys) so outside
    tools can run on the very same split; returns the paths by split."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in SPLITS:
        edges = data.edges(split).cpu()
        table = pa.table(
            {
                USER.key: pa.array([data.user_ids[i] for i in edges[0].tolist()], USER.key_type),
                MOVIE.key: pa.array([data.movie_ids[i] for i in edges[1].tolist()], MOVIE.key_type),
            }
        )
        paths[split] = out_dir / f"{split}.csv"
        pacsv.write_csv(table, paths[split])
    log.info("exported split to %s", out_dir)
    return paths


def bpr_triples(
    train_edges: Tensor, num_movies: int, batch_size: int, generator: torch.Generator
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """One epoch of shuffled ``(user, positive movie, negative movie)`` batches for BPR.

    Negatives are drawn uniformly among movies; a draw that hits one of the user's training
    positives is redrawn (up to 10 times, then kept: with thousands of movies this is rare).
    """
    device = train_edges.device
    keys = (train_edges[0] * num_movies + train_edges[1]).sort().values  # [E]
    perm = torch.randperm(train_edges.size(1), generator=generator).to(device)
    users, pos = train_edges[0, perm], train_edges[1, perm]
    neg = torch.randint(num_movies, (users.numel(),), generator=generator).to(device)
    todo = torch.arange(users.numel(), device=device)  # pairs whose negative is not checked yet
    for _ in range(10):  # only redrawn negatives are checked again: 9.6M pairs are probed once
        probe = users[todo] * num_movies + neg[todo]
        at = torch.searchsorted(keys, probe).clamp(max=keys.numel() - 1)
        todo = todo[keys[at] == probe]
        if todo.numel() == 0:
            break
        neg[todo] = torch.randint(num_movies, (todo.numel(),), generator=generator).to(device)
    return list(zip(users.split(batch_size), pos.split(batch_size), neg.split(batch_size), strict=True))
