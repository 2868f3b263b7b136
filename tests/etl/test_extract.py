"""etl/extract.py on tiny zips built here, hostile ones included."""

from __future__ import annotations

import hashlib
import re
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cinegraph.errors import CinegraphError
from cinegraph.etl.extract import MARKER, extract_zip, unsafe_entries

MOVIES = b"movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"


def _zip(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> str:
    """Write a zip of ``entries`` and return its sha256."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def _extract(zip_path: Path, sha: str, dest: Path, max_bytes: int = 1 << 20) -> Path:
    return extract_zip(zip_path, dest, zip_sha256=sha, max_bytes=max_bytes)


def test_top_folder_becomes_the_destination(tmp_path: Path) -> None:
    entries = [("ml-x/", b""), ("ml-x/movies.csv", MOVIES), ("ml-x/sub/u.item", b"1|a\n")]
    sha = _zip(tmp_path / "v.zip", entries)
    folder = _extract(tmp_path / "v.zip", sha, tmp_path / "raw" / "ml-x")
    assert folder == tmp_path / "raw" / "ml-x"
    assert (folder / "movies.csv").read_bytes() == MOVIES
    assert (folder / "sub" / "u.item").read_bytes() == b"1|a\n"
    assert (folder / MARKER).read_text().strip() == sha
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["ml-x"]  # no temp folder left


def test_flat_archive_and_macosx_metadata(tmp_path: Path) -> None:
    sha = _zip(tmp_path / "v.zip", [("movies.csv", MOVIES), ("__MACOSX/._movies.csv", b"meta")])
    folder = _extract(tmp_path / "v.zip", sha, tmp_path / "raw" / "v")
    assert (folder / "movies.csv").read_bytes() == MOVIES
    sha = _zip(tmp_path / "w.zip", [("ml-w/movies.csv", MOVIES), ("__MACOSX/ml-w/._m.csv", b"meta")])
    assert (_extract(tmp_path / "w.zip", sha, tmp_path / "raw" / "w") / "movies.csv").exists()


def test_unchanged_zip_is_not_extracted_again_and_a_changed_one_is(tmp_path: Path) -> None:
    sha = _zip(tmp_path / "v.zip", [("ml-x/movies.csv", MOVIES)])
    folder = _extract(tmp_path / "v.zip", sha, tmp_path / "ml-x")
    (folder / "sentinel").write_text("kept while the zip is unchanged")
    _extract(tmp_path / "v.zip", sha, tmp_path / "ml-x")
    assert (folder / "sentinel").exists()
    sha2 = _zip(tmp_path / "v.zip", [("ml-x/movies.csv", MOVIES + b"2,Jumanji (1995),Adventure\n")])
    _extract(tmp_path / "v.zip", sha2, tmp_path / "ml-x")
    assert not (folder / "sentinel").exists()
    assert (folder / "movies.csv").read_bytes().endswith(b"Jumanji (1995),Adventure\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-x", "v.zip"]


HOSTILE = {
    "absolute": ([("/etc/evil.csv", b"x")], "absolute path '/etc/evil.csv'"),
    "windows-drive": ([("C:/evil.csv", b"x")], "absolute path 'C:/evil.csv'"),
    "dotdot": ([("ml-x/../../evil.csv", b"x")], "path escaping the folder 'ml-x/../../evil.csv'"),
    "backslash-dotdot": ([("ml-x\\..\\..\\evil.csv", b"x")], "path escaping the folder"),
    "symlink": ([_symlink("ml-x/link.csv", "/etc/passwd")], "symbolic link 'ml-x/link.csv'"),
    "over-cap": ([("ml-x/big.csv", b"0" * 2000)], "uncompressed size 2060 exceeds the cap of 1000 bytes"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_before_writing(tmp_path: Path, case: str) -> None:
    entries, reason = HOSTILE[case]
    sha = _zip(tmp_path / "bad.zip", [("ml-x/movies.csv", MOVIES), *entries])
    raw = tmp_path / "raw"
    with pytest.raises(CinegraphError, match=r"bad\.zip: unsafe archive: .*" + re.escape(reason)):
        _extract(tmp_path / "bad.zip", sha, raw / "ml-x", max_bytes=1000)
    assert not raw.exists() or list(raw.iterdir()) == []
    assert not (tmp_path.parent / "evil.csv").exists()


def test_failed_extraction_keeps_the_previous_folder(tmp_path: Path) -> None:
    sha = _zip(tmp_path / "v.zip", [("ml-x/movies.csv", MOVIES)])
    _extract(tmp_path / "v.zip", sha, tmp_path / "raw" / "ml-x")
    sha = _zip(tmp_path / "v.zip", [("ml-x/movies.csv", MOVIES), ("../evil", b"x")])
    with pytest.raises(CinegraphError, match="unsafe archive"):
        _extract(tmp_path / "v.zip", sha, tmp_path / "raw" / "ml-x")
    assert (tmp_path / "raw" / "ml-x" / "movies.csv").read_bytes() == MOVIES
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["ml-x"]


def test_every_problem_is_listed_in_one_line() -> None:
    members = [zipfile.ZipInfo(n) for n in ("/a", "../b", "c/../../d")]
    assert unsafe_entries(members, 10) == [
        "absolute path '/a'",
        "path escaping the folder '../b'",
        "path escaping the folder 'c/../../d'",
    ]
    # '..' counts only as a whole component
    assert unsafe_entries([zipfile.ZipInfo("ok/..data/x.csv")], 10) == []


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not really a zip", b"movieId,title\n"])
def test_corrupt_or_empty_archive(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "v.zip").write_bytes(content)
    with pytest.raises(CinegraphError, match=r"v\.zip: corrupt or unsupported zip archive"):
        _extract(tmp_path / "v.zip", "0" * 64, tmp_path / "ml-x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.zip"]


@pytest.mark.parametrize("entries", [[], [("ml-x/", b"")]])
def test_archive_without_files(tmp_path: Path, entries: list[tuple[str, bytes]]) -> None:
    sha = _zip(tmp_path / "v.zip", entries)
    with pytest.raises(CinegraphError, match=r"v\.zip: the archive holds no files"):
        _extract(tmp_path / "v.zip", sha, tmp_path / "ml-x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.zip"]


def test_bad_crc_leaves_nothing(tmp_path: Path) -> None:
    _zip(tmp_path / "v.zip", [("ml-x/movies.csv", MOVIES * 50)])
    data = bytearray((tmp_path / "v.zip").read_bytes())
    data[60] ^= 0xFF  # flip a byte of the compressed stream
    (tmp_path / "v.zip").write_bytes(bytes(data))
    with pytest.raises(CinegraphError, match="corrupt or unsupported"):
        _extract(tmp_path / "v.zip", "0" * 64, tmp_path / "raw" / "ml-x")
    assert list((tmp_path / "raw").iterdir()) == []


def test_cap_must_be_positive(tmp_path: Path) -> None:
    sha = _zip(tmp_path / "v.zip", [("movies.csv", MOVIES)])
    with pytest.raises(CinegraphError, match="max_extract_bytes=0 must be positive"):
        _extract(tmp_path / "v.zip", sha, tmp_path / "v", max_bytes=0)


def test_only_dead_runs_leftovers_are_removed(tmp_path: Path) -> None:
    """Temporary folders carry their run's pid: a dead run's go, a live run's stay."""
    sha = _zip(tmp_path / "v.zip", [("movies.csv", MOVIES)])
    raw = tmp_path / "raw"
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as live:
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
        ).stdout.strip()
        try:
            mine = [raw / f".ml-x.extracting-{live.pid}-aaaa", raw / f".ml-x.old-{live.pid}-bbbb"]
            theirs = [raw / f".ml-x.extracting-{dead}-cccc", raw / f".ml-x.old-{dead}-dddd"]
            for folder in (*mine, *theirs):
                folder.mkdir(parents=True)
            _extract(tmp_path / "v.zip", sha, raw / "ml-x")
            assert all(f.is_dir() for f in mine) and not any(f.exists() for f in theirs)
        finally:
            live.kill()
