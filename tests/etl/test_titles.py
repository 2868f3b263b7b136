"""etl/titles.py: MovieLens title parsing and the shared normalisation."""

from __future__ import annotations

import pytest

from cinegraph.etl.titles import (
    ParsedTitle,
    colon_parts,
    normalize,
    normalize_many,
    parse_title,
    query_strings,
    split_year,
    title_key,
)


@pytest.mark.parametrize(
    ("raw", "name", "year", "alternates"),
    [
        ("Shawshank Redemption, The (1994)", "The Shawshank Redemption", 1994, ()),
        ("Haus, Das (1984)", "Das Haus", 1984, ()),
        ("Hombre, El (2003)", "El Hombre", 2003, ()),
        ("Amour, L' (2012)", "L'Amour", 2012, ()),
        ("Strada, La (1954)", "La Strada", 1954, ()),
        ("Chump at Oxford, A (1940)", "A Chump at Oxford", 1940, ()),
        (
            "Cité des enfants perdus, La (City of Lost Children, The) (1995)",
            "La Cité des enfants perdus",
            1995,
            ("The City of Lost Children",),
        ),
        (
            "Children Are Watching Us, The (Bambini ci guardano, I) (1944)",
            "The Children Are Watching Us",
            1944,
            ("I Bambini ci guardano",),
        ),
        ("Sunset Blvd. (a.k.a. Sunset Boulevard) (1950)", "Sunset Blvd.", 1950, ("Sunset Boulevard",)),
        (
            "Léon: The Professional (a.k.a. The Professional) (Léon) (1994)",
            "Léon: The Professional",
            1994,
            ("The Professional", "Léon"),
        ),
        ("Death Note: Desu nôto (2006–2007)", "Death Note: Desu nôto", 2006, ()),
        ("Babylon 5", "Babylon 5", None, ()),
        ("(500) Days of Summer (2009)", "(500) Days of Summer", 2009, ()),
        (
            "Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il) (1966)",
            "The Good, the Bad and the Ugly",
            1966,
            ("Il Buono, il brutto, il cattivo",),
        ),
        ("Love, Simon (2018)", "Love, Simon", 2018, ()),
        ("Toy Story (1995) ", "Toy Story", 1995, ()),
    ],
)
def test_parse_title(raw: str, name: str, year: int | None, alternates: tuple[str, ...]) -> None:
    assert parse_title(raw) == ParsedTitle(name=name, year=year, alternates=alternates)


@pytest.mark.parametrize(
    ("raw", "rest", "year"),
    [
        ("Heat (1995)", "Heat", 1995),
        ("Cosmos", "Cosmos", None),
        ("Show (2006-)", "Show", 2006),
        ("1984 (1956)", "1984", 1956),
    ],
)
def test_split_year(raw: str, rest: str, year: int | None) -> None:
    assert split_year(raw) == (rest, year)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Pekka ja Pätkä Suezilla", "Pekka ja Pätkä Suez'illa"),  # apostrophes vanish
        ("Cité des enfants perdus", "CITE DES ENFANTS PERDUS"),  # accents, case
        ("Rock & Roll High School", "Rock and Roll High School"),
        ("The Godfather: Part II", "The Godfather Part 2"),  # sequel numerals
        ("L' Assedio", "L'assedio"),  # spaced elision
        ("Die Straße", "Die Strasse"),
        ("Alien³", "Alien3"),
        ("M. Hulot’s Holiday", "M Hulots  Holiday"),
        ("The Creature from the Black Lagoon", "Creature from the Black Lagoon"),  # leading article
        ("La Strada", "Strada"),
    ],
)
def test_normalize_agrees(a: str, b: str) -> None:
    assert normalize(a) == normalize(b)


@pytest.mark.parametrize(
    ("a", "b"), [("V for Vendetta", "5 for Vendetta"), ("I, Robot", "1 Robot"), ("Rocky", "Rocky 2"), ("The", "A")]
)
def test_normalize_keeps_apart(a: str, b: str) -> None:
    assert normalize(a) != normalize(b)


def test_normalize_form() -> None:
    assert (
        normalize("  Amélie -- (Le Fabuleux Destin d'Amélie Poulain)!  ") == "amelie le fabuleux destin damelie poulain"
    )
    assert title_key(normalize("Babylon 5")) == "babylon5"
    assert normalize("Иван Грозный — Часть II") == "иван грозныи часть 2"  # other scripts survive (folded)


def test_colon_parts_skip_short_halves() -> None:
    assert colon_parts("Sherlock Holmes: Dressed to Kill") == ["dressed to kill"]
    assert colon_parts("A Woman of Paris: A Drama of Fate") == ["woman of paris", "drama of fate"]
    assert colon_parts("Alien: Resurrection") == []
    assert colon_parts("Heat") == []


def test_query_strings_main_first_then_alternates_then_derived() -> None:
    got = query_strings("Sherlock Holmes: The Woman in Green (a.k.a. Woman in Green, The) (1945)")
    assert got == [("sherlock holmes the woman in green", False), ("woman in green", False)]
    assert query_strings("Seven (a.k.a. Se7en) (1995)") == [("seven", False), ("se7en", False)]
    assert query_strings("Sherlock Holmes: Dressed to Kill (1946)") == [
        ("sherlock holmes dressed to kill", False),
        ("dressed to kill", True),
    ]


def test_normalize_many_matches_one_by_one() -> None:
    """The vectorised path and per-title calls agree, masks included (ASCII, accents, numerals)."""
    titles = ["Héllo Wörld", "Part II", None, "The Rock & Roll", "Ærø ii iii", "", "L' Assedio"]
    many = normalize_many(titles).to_pylist()
    assert many == [normalize(t) if t is not None else "" for t in titles]
    assert many == ["hello world", "part 2", "", "rock and roll", "aero 2 3", "", "lassedio"]
