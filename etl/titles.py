"""MovieLens title parsing and the one normalisation both sides of the matcher share.

MovieLens writes titles as ``"Cité des enfants perdus, La (City of Lost Children, The) (1995)"``:
a trailing year, inverted leading articles, and alternate (foreign / a.k.a.) titles in
parentheses. IMDb writes ``"La cité des enfants perdus"``. Everything here is a pure function so
the matcher and its tests see exactly the same strings.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Leading articles MovieLens moves to the end ("Haus, Das"), by language; matched case-insensitively.
ARTICLES: frozenset[str] = frozenset(
    {
        "the", "a", "an",                                   # English
        "le", "la", "les", "l'", "un", "une",               # French
        "der", "die", "das", "den", "dem", "des", "ein", "eine",  # German
        "el", "los", "las", "lo", "una",                    # Spanish
        "il", "i", "gli", "uno", "un'",                     # Italian
        "o", "os", "as", "um", "uma",                       # Portuguese
        "de", "het", "een",                                 # Dutch
        "en", "ett", "et", "det",                           # Scandinavian
        "az",                                               # Hungarian
        "els", "al",                                        # Catalan, Arabic transliteration
        "ta", "to", "ho", "hoi", "hai",                     # Greek transliteration
    }
)

# Articles dropped from the front of the comparison form, so "The Creature from the Black Lagoon"
# meets "Creature from the Black Lagoon"; elided ones ("l'", "d'") are already glued to their word.
_LEADING_ARTICLES: frozenset[str] = frozenset(
    {"the", "a", "an", "le", "la", "les", "der", "die", "das", "ein", "eine", "el", "los", "las", "il",
     "lo", "gli", "un", "une", "una", "uno", "het", "een", "den", "det"}
)

# A trailing year: "(1995)", "(2006–2007)", "(2006-)", "(1995 )"; the first year counts.
_YEAR_RE = re.compile(r"\s*\(\s*(\d{4})\s*(?:[-–—]\s*(?:\d{4})?\s*)?\)\s*$")
_AKA_RE = re.compile(r"^(?:a\.?k\.?a\.?|also known as)\s*:?\s+", re.IGNORECASE)
_INVERTED_RE = re.compile(r"^(?P<body>.+?),\s*(?P<article>[^\s,]+)$")
_APOSTROPHES = "'’‘`´ʼ"
# Letters NFKD leaves alone but people spell with ASCII.
_FOLD = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "ae", "ø": "o", "Ø": "o", "œ": "oe", "Œ": "oe",
                       "ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "þ": "th", "Þ": "th", "ð": "d",
                       "ı": "i"})
_ASCII_FOLD = str.maketrans({"&": " and ", "+": " and ", **{ch: None for ch in _APOSTROPHES}})
_NON_ALNUM_RE = re.compile(r"[\W_]+")
# Combining marks NFKD splits off accented letters (é -> e + U+0301).
_COMBINING_RE = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
# Elided articles written with a space ("L' Assedio") join their word, as in "L'assedio".
_ELISION_RE = re.compile(r"\b(l|d|qu|un|dell|dall|nell|sull|all)['’]\s+")
# Sequel numerals: "Part II" and "Part 2" must meet. Single letters (i, v, x) are words too often.
_ROMAN = {"ii": "2", "iii": "3", "iv": "4", "vi": "6", "vii": "7", "viii": "8", "ix": "9",
          "xi": "11", "xii": "12", "xiii": "13", "xiv": "14", "xv": "15", "xvi": "16"}


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
    seen = {name}
    unique = [a for a in alternates if not (a in seen or seen.add(a))]  # type: ignore[func-returns-value]
    return ParsedTitle(name=name, year=year, alternates=tuple(unique))


@lru_cache(maxsize=1 << 20)
def normalize(text: str) -> str:
    """Fold a title to the comparison form: accents stripped, casefolded, no punctuation,
    "&" -> "and", sequel numerals as digits, no leading article, single spaces. Apostrophes vanish
    ("Suez'illa" == "Suezilla")."""
    if not text.isascii():
        text = _COMBINING_RE.sub("", unicodedata.normalize("NFKD", text.translate(_FOLD)))
    text = text.casefold()
    if "'" in text or "’" in text:
        text = _ELISION_RE.sub(r"\1", text)
    words = [_ROMAN.get(w, w) for w in _NON_ALNUM_RE.sub(" ", text.translate(_ASCII_FOLD)).split()]
    if len(words) > 1 and words[0] in _LEADING_ARTICLES:
        del words[0]
    return " ".join(words)


def title_key(norm: str) -> str:
    """The exact-match key of a normalised title (spaces removed), for blocking undated movies."""
    return norm.replace(" ", "")


def colon_parts(text: str, min_words: int = 3) -> list[str]:
    """Normalised halves of a "Series: Title" or "Title: Subtitle" spelling, each at least
    ``min_words`` words long: MovieLens writes "Sherlock Holmes: Dressed to Kill" where IMDb has
    "Dressed to Kill", and IMDb "A Woman of Paris: A Drama of Fate" where MovieLens has the short form.
    Short halves ("Alien: Resurrection" -> "resurrection") would collide with unrelated homonyms."""
    if ":" not in text:
        return []
    head, _, tail = text.partition(":")
    parts = [normalize(head), normalize(tail)]
    return [p for p in parts if len(p.split()) >= min_words]


def query_strings(raw: str) -> list[tuple[str, bool]]:
    """The distinct normalised spellings a MovieLens title is searched under, main title first,
    each flagged ``derived`` when it is only a colon half (it then scores a little lower)."""
    variants = parse_title(raw).variants()
    out: dict[str, bool] = {}
    for variant in variants:
        norm = normalize(variant)
        if norm:
            out[norm] = False
    for variant in variants:
        for part in colon_parts(variant):
            out.setdefault(part, True)
    return list(out.items())
