"""How MovieLens titles are matched to IMDb titles: the settings every matching step reads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MatchConfig(BaseModel):
    """How titles are matched; every field has a default that meets the bar on the real mirror."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["links", "fuzzy"] = Field("links", description="links: trust links.csv where it resolves")
    threshold: float = Field(90.0, ge=0, le=100, description="minimum fuzzy score (0-100) for a match")
    margin: float = Field(4.0, ge=0, description="winner must beat the best differently-titled candidate by this")
    year_tolerance: int = Field(1, ge=0, description="candidates may start this many years off the ML year")
    year_penalty: float = Field(2.0, ge=0, description="ranking points lost per year off")
    type_penalty: dict[str, float] = Field(
        {"movie": 0.0, "tvMovie": 1.0, "video": 1.0}, description="ranking points lost per IMDb title type"
    )
    other_type_penalty: float = Field(4.0, description="for title types not listed above (short, tvSpecial, ...)")
    derived_penalty: float = Field(5.0, ge=0, description="score lost when only a colon half matched")
    aka_penalty: float = Field(3.0, ge=0, description="score lost when only an a.k.a. title matched")
    vote_weight: float = Field(1.0, ge=0, description="ranking points per tenfold IMDb votes: popular homonyms win")
    tie_window: float = Field(0.5, ge=0, description="another title ranked this close (even a homonym): review")
    scorer: Literal["ratio", "token_sort_ratio"] = Field("ratio", description="rapidfuzz scorer on normalised titles")
    max_cells: int = Field(20_000_000, ge=1, description="cdist cells per chunk: bounds memory")
    workers: int = Field(-1, description="rapidfuzz threads (-1: all cores)")
