"""Which subgraph to export or train on: :class:`ExportFilter`, a pydantic model with no I/O, so
the flow parameters that embed it import neither Neo4j, DuckDB nor PyG. :mod:`graph_store.export`
runs it against Neo4j or a snapshot; its module docstring states what a filter keeps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cinegraph import schema
from cinegraph.schema import EdgeType, NodeType

if TYPE_CHECKING:  # a Literal computed from the schema is beyond static checkers
    NodeLabel = str
    EdgeRel = str
else:  # an enum in the flow form, and pydantic names the allowed values in its errors
    NodeLabel = Literal[tuple(n.label for n in schema.NODE_TYPES)]
    EdgeRel = Literal[tuple(e.rel for e in schema.EDGE_TYPES)]


class ExportFilter(BaseModel):
    """Which subgraph to export. Field names match the train flow's subgraph parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_user_ratings: int = Field(0, ge=0, description="drop users with fewer kept ratings")
    rating_after: int | None = Field(None, description="keep ratings at or after (unix seconds)")
    rating_before: int | None = Field(None, description="keep ratings before (unix seconds)")
    year_min: int | None = Field(None, description="first movie year kept")
    year_max: int | None = Field(None, description="last movie year kept")
    node_types: tuple[NodeLabel, ...] = Field(
        tuple(n.label for n in schema.NODE_TYPES),
        min_length=1,
        json_schema_extra={"uniqueItems": True},
        description="node labels to include",
    )
    edge_types: tuple[EdgeRel, ...] | None = Field(
        None,
        json_schema_extra={"uniqueItems": True},
        description="relationship types to include (empty: all between included nodes)",
    )

    @model_validator(mode="after")
    def _check(self) -> ExportFilter:
        problems = []
        rels = {e.rel: e for e in schema.EDGE_TYPES}
        for name, values in (("node_types", self.node_types), ("edge_types", self.edge_types or ())):
            if len(set(values)) != len(values):
                problems.append(f"{name} repeat a type: {list(values)}")
        for rel in self.edge_types or ():
            need = {rels[rel].src.label, rels[rel].dst.label} - set(self.node_types)
            if need:
                problems.append(f"edge type {rel} needs node type(s) {sorted(need)}")
        if self.year_min is not None and self.year_max is not None and self.year_min > self.year_max:
            problems.append(f"year_min={self.year_min} > year_max={self.year_max}")
        if self.rating_after is not None and self.rating_before is not None and self.rating_after >= self.rating_before:
            problems.append(f"rating_after={self.rating_after} >= rating_before={self.rating_before}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def selected_node_types(self) -> tuple[NodeType, ...]:
        return tuple(n for n in schema.NODE_TYPES if n.label in self.node_types)

    @property
    def selected_edge_types(self) -> tuple[EdgeType, ...]:
        if self.edge_types is None:
            labels = set(self.node_types)
            return tuple(e for e in schema.EDGE_TYPES if {e.src.label, e.dst.label} <= labels)
        return tuple(e for e in schema.EDGE_TYPES if e.rel in self.edge_types)

    def params(self) -> dict[str, Any]:
        """The scalar bounds as query parameters (Cypher ``$name`` and DuckDB ``$name`` alike)."""
        return {
            "year_min": self.year_min,
            "year_max": self.year_max,
            "rating_after": self.rating_after,
            "rating_before": self.rating_before,
            "min_user_ratings": self.min_user_ratings,
        }
