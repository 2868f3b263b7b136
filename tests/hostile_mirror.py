"""A copy of the real mirror with hostile edits, laid out like the mirror so the ETL fetches it
over HTTP like the real dumps: MovieLens members rewritten line by line inside a fresh zip (and
its .md5), IMDb files replaced or linked to the real ones."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

ZIP = "ml-latest-small.zip"
Edit = Callable[[list[bytes]], list[bytes]]


def build_mirror(mirror: Path, root: Path, edits: Mapping[str, Edit] = {}, imdb: Mapping[str, bytes] = {}) -> Path:
    """Write the mirror under ``root``. ``edits`` maps a member name (``ratings.csv``) to a function
    of its lines without line ends (the member's own CRLF is put back); ``imdb`` maps an IMDb file
    name (``title.basics``) to its new gzip bytes."""
    (root / "movielens").mkdir(parents=True, exist_ok=True)
    (root / "imdb").mkdir(exist_ok=True)
    with (
        zipfile.ZipFile(mirror / "movielens" / ZIP) as src,
        zipfile.ZipFile(root / "movielens" / ZIP, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            data = src.read(info)
            name = info.filename.rsplit("/", 1)[-1]
            if name in edits:
                eol = b"\r\n" if b"\r\n" in data[:1000] else b"\n"
                data = b"".join(line + eol for line in edits[name](data.splitlines()))
            dst.writestr(info, data)
    digest = hashlib.md5((root / "movielens" / ZIP).read_bytes()).hexdigest()
    (root / "movielens" / f"{ZIP}.md5").write_text(f"{digest}  {ZIP}\n")
    for real in (mirror / "imdb").iterdir():
        key = real.name.removesuffix(".tsv.gz")
        if key in imdb:
            (root / "imdb" / real.name).write_bytes(imdb[key])
        else:
            (root / "imdb" / real.name).symlink_to(real)
    return root
