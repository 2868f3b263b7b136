"""MovieLens title parsing and the one normalisation both sides of the matcher share.

MovieLens writes titles as ``"Cité des enfants perdus, La (City of Lost Children, The) (1995)"``:
a trailing year, inverted leading articles, and alternate (foreign / a.k.a.) titles in
parentheses. IMDb writes ``"La cité des enfants perdus"``. Everything here is a pure function so
the matcher and its tests see exactly the same strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

# Leading articles MovieLens moves to the end ("Haus, Das"), by language; matched case-insensitively.
ARTICLES: frozenset[str] = frozenset(
    {
        "the",
        "a",
        "an",  # English
        "le",
        "la",
        "les",
        "l'",
        "un",
        "une",  # French
        "der",
        "die",
        "das",
        "den",
        "dem",
        "des",
        "ein",
        "eine",  # German
        "el",
        "los",
        "las",
        "lo",
        "una",  # Spanish
        "il",
        "i",
        "gli",
        "uno",
        "un'",  # Italian
        "o",
        "os",
        "as",
        "um",
        "uma",  # Portuguese
        "de",
        "het",
        "een",  # Dutch
        "en",
        "ett",
        "et",
        "det",  # Scandinavian
        "az",  # Hungarian
        "els",
        "al",  # Catalan, Arabic transliteration
        "ta",
        "to",
        "ho",
        "hoi",
        "hai",  # Greek transliteration
    }
)

# Articles dropped from the front of the comparison form, so "The Creature from the Black Lagoon"
# meets "Creature from the Black Lagoon"; elided ones ("l'", "d'") are already glued to their word.
_LEADING_ARTICLES: frozenset[str] = frozenset(
    {
        "the",
        "a",
        "an",
        "le",
        "la",
        "les",
        "der",
        "die",
        "das",
        "ein",
        "eine",
        "el",
        "los",
        "las",
        "il",
        "lo",
        "gli",
        "un",
        "une",
        "una",
        "uno",
        "het",
        "een",
        "den",
        "det",
    }
)

# A trailing year: "(1995)", "(2006–2007)", "(2006-)", "(1995 )"; the first year counts.
_YEAR_RE = re.compile(r"\s*\(\s*(\d{4})\s*(?:[-–—]\s*(?:\d{4})?\s*)?\)\s*$")
_AKA_RE = re.compile(r"^(?:a\.?k\.?a\.?|also known as)\s*:?\s+", re.IGNORECASE)
_INVERTED_RE = re.compile(r"^(?P<body>.+?),\s*(?P<article>[^\s,]+)$")
_APOSTROPHES = "'’‘`´ʼ"
# Letters NFKD leaves alone but people spell with ASCII.
_FOLD = {
    "ß": "ss",
    "æ": "ae",
    "Æ": "ae",
    "ø": "o",
    "Ø": "o",
    "œ": "oe",
    "Œ": "oe",
    "ł": "l",
    "Ł": "l",
    "đ": "d",
    "Đ": "d",
    "þ": "th",
    "Þ": "th",
    "ð": "d",
    "ı": "i",
}
# Sequel numerals: "Part II" and "Part 2" must meet. Single letters (i, v, x) are words too often.
_ROMAN = {
    "ii": "2",
    "iii": "3",
    "iv": "4",
    "vi": "6",
    "vii": "7",
    "viii": "8",
    "ix": "9",
    "xi": "11",
    "xii": "12",
    "xiii": "13",
    "xiv": "14",
    "xv": "15",
    "xvi": "16",
}
# Vectorised passes (pyarrow, RE2), in order; one implementation serves both catalogues.
_UNICODE_PASSES: list[tuple[str, str, str]] = [  # only for the strings that are not ASCII
    *(("literal", src, dst) for src, dst in _FOLD.items()),
    ("nfkd", "", ""),
    ("regex", r"\p{M}+", ""),  # combining marks NFKD split off (é -> e + U+0301)
]
_PASSES: list[tuple[str, str, str]] = [
    ("lower", "", ""),
    # Elided articles written with a space ("L' Assedio") join their word, as in "L'assedio".
    ("regex", r"\b(l|d|qu|un|dell|dall|nell|sull|all)['’]\s+", r"\1"),
    ("regex", "[" + _APOSTROPHES + "]", ""),  # "Suez'illa" == "Suezilla"
    ("regex", r"[&+]", " and "),
    ("regex", r"[^\pL\pN]+", " "),
    ("trim", "", ""),
]
_ROMAN_RE = r"(^| )(" + "|".join(_ROMAN) + r")( |$)"
_ROMAN_PASSES: list[tuple[str, str, str]] = [  # only for the strings holding a numeral
    ("regex", _ROMAN_RE, r"\1<\2>\3"),
    ("regex", _ROMAN_RE, r"\1<\2>\3"),  # again: "ii iii" shares its space
    *(("literal", f"<{roman}>", digit) for roman, digit in _ROMAN.items()),
]
_ARTICLE_PASSES: list[tuple[str, str, str]] = [
    ("regex", r"^(?:" + "|".join(sorted(_LEADING_ARTICLES)) + r") (.)", r"\1"),
]


@dataclass(frozen=True)
class ParsedTitle:
    """A MovieLens title split into its parts; ``name`` and ``alternates`` have articles restored."""

    name: str
    year: int | None
    alternates: tuple[str, ...]

    def variants(self) -> tuple[str, ...]:
        """Every spelling worth querying: the main title first, then the alternates."""
        return (self.name, *self.alternates)


def split_year(title: str) -> tuple[str, int | None]:
    """Strip a trailing "(YYYY)" (or a range such as "(2006–2007)") and return it as the year."""
    m = _YEAR_RE.search(title)
    if m is None:
        return title.strip(), None
    return title[: m.start()].strip(), int(m.group(1))


def _trailing_groups(name: str) -> tuple[str, list[str]]:
    """Peel balanced "(...)" groups off the end: "A (B) (C)" -> ("A", ["B", "C"]).

    Only trailing groups are alternates; "(500) Days of Summer" keeps its leading parentheses.
    """
    groups: list[str] = []
    rest = name.rstrip()
    while rest.endswith(")"):
        depth = 0
        for i in range(len(rest) - 1, -1, -1):
            if rest[i] == ")":
                depth += 1
            elif rest[i] == "(":
                depth -= 1
                if depth == 0:
                    break
        else:
            break  # unbalanced: leave it in the title
        head = rest[:i].rstrip()
        if not head:
            break  # the whole title is parenthesised
        groups.insert(0, rest[i + 1 : -1].strip())
        rest = head
    return rest, groups


def uninvert(name: str) -> str:
    """Move a trailing article back to the front: "Haus, Das" -> "Das Haus", "Amour, L'" -> "L'Amour"."""
    m = _INVERTED_RE.match(name.strip())
    if m is None or m.group("article").casefold() not in ARTICLES:
        return name.strip()
    article, body = m.group("article"), m.group("body").strip()
    if article[-1] in _APOSTROPHES:
        return f"{article}{body}"
    return f"{article} {body}"


def parse_title(raw: str) -> ParsedTitle:
    """Parse one MovieLens title into name, year and alternate titles."""
    rest, year = split_year(raw)
    main, groups = _trailing_groups(rest)
    alternates: list[str] = []
    for group in groups:
        group = _AKA_RE.sub("", group).strip()
        if group:
            alternates.append(uninvert(group))
    name = uninvert(main)
    unique = [a for a in dict.fromkeys(alternates) if a != name]  # first spelling of each, in order
    return ParsedTitle(name=name, year=year, alternates=tuple(unique))


def _run_passes(arr: pa.Array, passes: list[tuple[str, str, str]]) -> pa.Array:
    for kind, pattern, replacement in passes:
        if kind == "literal":
            arr = pc.replace_substring(arr, pattern, replacement)
        elif kind == "regex":
            arr = pc.replace_substring_regex(arr, pattern, replacement)
        elif kind == "nfkd":
            arr = pc.utf8_normalize(arr, "NFKD")
        elif kind == "lower":
            arr = pc.utf8_lower(arr)
        else:
            arr = pc.utf8_trim_whitespace(arr)
    return arr


def _run_where(arr: pa.Array, mask: pa.Array, passes: list[tuple[str, str, str]]) -> pa.Array:
    """Run passes on the masked strings only (most titles are plain ASCII without numerals)."""
    if not pc.any(mask).as_py():
        return arr
    return pc.replace_with_mask(arr, mask, _run_passes(arr.filter(mask), passes))


def normalize_many(texts: Sequence[str] | pa.Array) -> pa.Array:
    """Fold titles to the comparison form, vectorised: accents stripped, lower case, no
    punctuation, "&" -> "and", sequel numerals as digits, no leading article, single spaces."""
    arr = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.string())
    arr = pc.fill_null(arr.cast(pa.string()), "")
    arr = _run_where(arr, pc.invert(pc.string_is_ascii(arr)), _UNICODE_PASSES)
    arr = _run_passes(arr, _PASSES)
    arr = _run_where(arr, pc.match_substring_regex(arr, _ROMAN_RE), _ROMAN_PASSES)
    return _run_passes(arr, _ARTICLE_PASSES)


def normalize(text: str) -> str:
    """:func:`normalize_many` for one title."""
    return normalize_many([text])[0].as_py()


def title_key(norm: str) -> str:
    """The exact-match key of a normalised title (spaces removed), for blocking undated movies."""
    return norm.replace(" ", "")


def colon_parts_many(texts: Sequence[str], min_words: int = 3) -> list[list[str]]:
    """Normalised halves of "Series: Title" or "Title: Subtitle" spellings, each at least
    ``min_words`` words long: MovieLens writes "Sherlock Holmes: Dressed to Kill" where IMDb has
    "Dressed to Kill", and IMDb "A Woman of Paris: A Drama of Fate" where MovieLens has the short
    form. Short halves ("Alien: Resurrection" -> "resurrection") would collide with homonyms."""
    owners: list[int] = []
    halves: list[str] = []
    for i, text in enumerate(texts):
        if ":" in text:
            head, _, tail = text.partition(":")
            owners += [i, i]
            halves += [head, tail]
    out: list[list[str]] = [[] for _ in texts]
    for i, half in zip(owners, normalize_many(halves).to_pylist(), strict=True):
        if half.count(" ") + 1 >= min_words:
            out[i].append(half)
    return out


def colon_parts(text: str, min_words: int = 3) -> list[str]:
    """:func:`colon_parts_many` for one title."""
    return colon_parts_many([text], min_words)[0]


def query_strings_many(raws: Sequence[str]) -> list[list[tuple[str, bool]]]:
    """The distinct normalised spellings each MovieLens title is searched under, main title first,
    each flagged ``derived`` when it is only a colon half (it then scores a little lower)."""
    variants = [parse_title(raw).variants() for raw in raws]
    flat = [v for vs in variants for v in vs]
    norms = iter(normalize_many(flat).to_pylist())
    halves = iter(colon_parts_many(flat))
    out: list[list[tuple[str, bool]]] = []
    for vs in variants:
        spellings: dict[str, bool] = {}
        parts: list[str] = []
        for _ in vs:
            norm = next(norms)
            if norm:
                spellings[norm] = False
            parts += next(halves)
        for part in parts:
            spellings.setdefault(part, True)
        out.append(list(spellings.items()))
    return out


def query_strings(raw: str) -> list[tuple[str, bool]]:
    """:func:`query_strings_many` for one title."""
    return query_strings_many([raw])[0]
