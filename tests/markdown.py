"""Reading the markdown that reports and benchmarks write, so tests check numbers and structure
rather than exact text."""

from __future__ import annotations

import re


def tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Every pipe table in ``text``, keyed by its first header cell; rows as {header: cell}."""
    found: dict[str, list[dict[str, str]]] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if not (_is_row(line) and re.fullmatch(r"\|(\s*:?-{3,}:?\s*\|)+", lines[i + 1].strip())):
            continue
        header = _cells(line)
        rows = []
        for body in lines[i + 2 :]:
            if not _is_row(body):
                break
            rows.append(dict(zip(header, _cells(body), strict=True)))
        found[header[0]] = rows
    return found


def number(cell: str) -> float:
    """A rendered figure back as a float: ``"23,900"`` -> 23900.0, ``"**61.0x**"`` -> 61.0."""
    return float(cell.strip("* x").replace(",", ""))


def _is_row(line: str) -> bool:
    line = line.strip()
    return line.startswith("|") and line.endswith("|")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip()[1:-1].split("|")]
