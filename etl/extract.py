"""Safe, idempotent zip extraction for the MovieLens archives.

Every entry is checked before a byte is written: absolute paths, ``..`` components, symlink
entries and archives whose declared uncompressed size exceeds a cap are refused (``zipfile``
itself stops each entry at its declared size and checks its CRC, so the declared total bounds what
is written). The archive is extracted into a temporary folder beside the destination, named with
the run's pid (only a dead run's leftovers are removed), and renamed into place, with the zip's
sha256 stored inside it, so an unchanged zip is never extracted twice and a failed extraction
leaves the previous folder untouched.
"""

from __future__ import annotations

import logging
import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from cinegraph.errors import CinegraphError
from cinegraph.graph_store.lock import owned_name, owner_alive

log = logging.getLogger(__name__)

DEFAULT_MAX_EXTRACT_BYTES = 4 * 1024**3  # the largest variant (ml-latest with genome) is ~1.4 GB
MARKER = ".cinegraph-zip-sha256"
_MAX_LISTED = 5
_SEPARATORS = re.compile(r"[\\/]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_entries(members: list[zipfile.ZipInfo], max_bytes: int) -> list[str]:
    """Every reason to refuse the archive, one short phrase each (empty when it is safe)."""
    problems = []
    total = 0
    for info in members:
        name = info.filename
        if name.startswith(("/", "\\")) or _DRIVE.match(name):
            problems.append(f"absolute path {name!r}")
        elif ".." in _SEPARATORS.split(name):
            problems.append(f"path escaping the folder {name!r}")
        if stat.S_ISLNK(info.external_attr >> 16):
            problems.append(f"symbolic link {name!r}")
        total += info.file_size
    if total > max_bytes:
        problems.append(f"uncompressed size {total} exceeds the cap of {max_bytes} bytes")
    return problems


def extract_zip(zip_path: Path, dest: Path, *, zip_sha256: str, max_bytes: int = DEFAULT_MAX_EXTRACT_BYTES) -> Path:
    """Extract ``zip_path`` so that ``dest`` holds its data files, and return ``dest``.

    A zip with a single top folder (``ml-100k/u.data``) has that folder's content placed at
    ``dest``. Nothing happens when ``dest`` was extracted from a zip with the same sha256.
    """
    if max_bytes <= 0:
        raise CinegraphError(f"max_extract_bytes={max_bytes} must be positive")
    marker = dest / MARKER
    if marker.is_file() and marker.read_text(encoding="ascii").strip() == zip_sha256:
        log.info("%s: already extracted from this archive", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    for pattern in (f".{dest.name}.extracting-*", f".{dest.name}.old-*"):  # left by a killed run
        for stale in dest.parent.glob(pattern):
            if not owner_alive(stale.name):
                shutil.rmtree(stale, ignore_errors=True)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = zf.infolist()
            if all(info.is_dir() for info in members):
                raise CinegraphError(f"{zip_path}: the archive holds no files")
            problems = unsafe_entries(members, max_bytes)
            if problems:
                more = f" (+{len(problems) - _MAX_LISTED} more)" if len(problems) > _MAX_LISTED else ""
                listed = "; ".join(problems[:_MAX_LISTED])
                raise CinegraphError(f"{zip_path}: unsafe archive: {listed}{more}")
            tmp = dest.parent / owned_name(f".{dest.name}.extracting")
            tmp.mkdir()
            try:
                for info in members:
                    _extract_member(zf, info, tmp)
                root = _data_root(tmp)
                (root / MARKER).write_text(zip_sha256 + "\n", encoding="ascii")
                _swap_in(root, dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as exc:
        raise CinegraphError(f"{zip_path}: corrupt or unsupported zip archive: {exc}") from None
    log.info("%s: extracted %d entries into %s", zip_path, len(members), dest)
    return dest


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path) -> None:
    parts = [p for p in PurePosixPath(info.filename.replace("\\", "/")).parts if p not in ("", ".")]
    if not parts:
        return
    target = root.joinpath(*parts)
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as src, target.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def _data_root(tmp: Path) -> Path:
    """The single top folder of the archive if it has one (``__MACOSX`` metadata ignored)."""
    top = [p for p in tmp.iterdir() if p.name != "__MACOSX"]
    if len(top) == 1 and top[0].is_dir():
        return top[0]
    return tmp


def _swap_in(new: Path, dest: Path) -> None:
    """Replace ``dest`` by ``new``; on failure the old folder is put back."""
    old = None
    if dest.exists():
        old = dest.with_name(owned_name(f".{dest.name}.old"))
        dest.rename(old)
    try:
        new.rename(dest)
    except OSError:
        if old is not None:
            old.rename(dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
