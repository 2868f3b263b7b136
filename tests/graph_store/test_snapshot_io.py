"""Reading snapshots: the tables by label/rel, and one-line errors on a foreign or damaged one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cinegraph import schema
from cinegraph.errors import CinegraphError
from cinegraph.graph_store.snapshot_io import (
    KILL_AT_VAR,
    SnapshotWriter,
    read_manifest,
    read_snapshot,
    recover,
    write_snapshot,
)
from tests.graph_store.neo4j_testing import small_tables


def make_snapshot(root: Path, version: int = schema.SCHEMA_VERSION) -> Path:
    """An empty but well-typed snapshot, as the ETL lays it out."""
    for nt in schema.NODE_TYPES:
        (root / schema.node_path(nt.label)).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(nt.arrow_schema().empty_table(), root / schema.node_path(nt.label))
    for et in schema.EDGE_TYPES:
        (root / schema.edge_path(et.rel)).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(et.arrow_schema().empty_table(), root / schema.edge_path(et.rel))
    (root / schema.MANIFEST_FILE).write_text(json.dumps({"schema_version": version, "counts": {}}))
    return root


def test_reads_every_type(tmp_path: Path) -> None:
    root = make_snapshot(tmp_path / "snapshot")
    users = pa.table(
        {
            "user_id": [1, 2],
            "gender": [None, "F"],
            "age": pa.array([None, 30], pa.int32()),
            "occupation": [None, None],
            "zip_code": [None, None],
        },
        schema=schema.USER.arrow_schema(),
    )
    pq.write_table(users, root / schema.node_path("User"))
    tables = read_snapshot(root)
    assert list(tables) == [n.label for n in schema.NODE_TYPES] + [e.rel for e in schema.EDGE_TYPES]
    assert tables["User"].column("user_id").to_pylist() == [1, 2]
    assert tables["RATED"].schema.equals(schema.RATED.arrow_schema())
    assert read_manifest(root)["schema_version"] == schema.SCHEMA_VERSION


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: (r / schema.MANIFEST_FILE).unlink(), "manifest.json: not found"),
        (lambda r: (r / schema.MANIFEST_FILE).write_text("{not json"), "manifest.json: not valid JSON"),
        (
            lambda r: (r / schema.MANIFEST_FILE).write_text('{"schema_version": 0}'),
            "manifest.json: schema_version 0, this code reads",
        ),
        (lambda r: (r / schema.edge_path("KNOWN_FOR")).unlink(), "KNOWN_FOR.parquet: missing"),
        (
            lambda r: pq.write_table(pa.table({"movie_id": ["x"]}), r / schema.node_path("Movie")),
            r"Movie.parquet: columns \['movie_id'\] do not match",
        ),
    ],
)
def test_damaged_snapshot_is_one_line_error(tmp_path: Path, damage, message: str) -> None:
    root = make_snapshot(tmp_path / "snapshot")
    damage(root)
    with pytest.raises(CinegraphError, match=message) as err:
        read_snapshot(root)
    assert "\n" not in str(err.value)


# --- the writer: atomic publish, killed writers, leftovers ---------------------------------------

ROOT = Path(__file__).resolve().parents[2]
KILLED_WRITER = """
import sys
from pathlib import Path
from cinegraph.graph_store.snapshot_io import write_snapshot
from tests.graph_store.neo4j_testing import small_tables
write_snapshot(Path(sys.argv[1]), small_tables(), created_at=sys.argv[2])
"""


def _write_killed(target: Path, created_at: str, point: str) -> None:
    """Run a writer in a real process that SIGKILLs itself at ``point``."""
    env = os.environ | {"PYTHONPATH": str(ROOT), KILL_AT_VAR: point}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(target), created_at],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def _leftovers(target: Path) -> list[str]:
    """Everything beside the published snapshot and its versions that a writer made."""
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


@pytest.mark.parametrize(
    ("point", "published"),
    [("before-manifest", False), ("before-publish", False), ("before-rename", False), ("after-rename", True)],
)
def test_killed_writer_leaves_one_complete_snapshot(tmp_path: Path, point: str, published: bool) -> None:
    target = tmp_path / "out" / "snapshot"
    write_snapshot(target, small_tables(), created_at="A")
    _write_killed(target, "B", point)
    # The path names one complete snapshot: the old one, or the new one once the rename happened.
    assert read_manifest(target)["created_at"] == ("B" if published else "A")
    assert read_snapshot(target)["RATED"].num_rows == small_tables()["RATED"].num_rows
    versions = target.with_name("snapshot.versions")
    dead = [v for v in versions.iterdir() if v != target.resolve()]
    assert dead or _leftovers(target), "the kill left nothing behind: the test did not reach its point"
    # The next writer recovers: its snapshot, the one before it, nothing of the dead run.
    write_snapshot(target, small_tables(), created_at="C")
    assert read_manifest(target)["created_at"] == "C"
    assert _leftovers(target) == []
    kept = sorted(json.loads((v / schema.MANIFEST_FILE).read_text())["created_at"] for v in versions.iterdir())
    assert kept == (["B", "C"] if published else ["A", "C"])


def test_failed_writer_keeps_the_old_snapshot(tmp_path: Path) -> None:
    target = tmp_path / "snapshot"
    write_snapshot(target, small_tables(), created_at="A")
    with pytest.raises(pa.ArrowInvalid), SnapshotWriter(target) as writer:
        writer.write_table("User", pa.table({"user_id": ["not a number"]}))
    assert read_manifest(target)["created_at"] == "A"
    assert [v.name for v in target.with_name("snapshot.versions").iterdir()] == [target.resolve().name]


def test_missing_link_is_pointed_at_the_newest_complete_version(tmp_path: Path) -> None:
    target = tmp_path / "snapshot"
    write_snapshot(target, small_tables(), created_at="A")
    write_snapshot(target, small_tables(), created_at="B")
    target.unlink()  # as if a run died while moving an old release's folder aside
    recover(target)
    assert read_manifest(target)["created_at"] == "B"


def test_folder_of_an_older_release_becomes_a_version(tmp_path: Path) -> None:
    target = make_snapshot(tmp_path / "snapshot")  # a plain folder, as older releases wrote
    write_snapshot(target, small_tables(), created_at="B")
    assert target.is_symlink() and read_manifest(target)["created_at"] == "B"
    assert len(list(target.with_name("snapshot.versions").iterdir())) == 2  # the old one is the previous


def test_refuses_to_replace_a_folder_that_is_no_snapshot(tmp_path: Path) -> None:
    target = tmp_path / "snapshot"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(CinegraphError, match="is not a snapshot folder"):
        write_snapshot(target, small_tables())
    assert (target / "notes.txt").read_text() == "mine"


def test_a_live_writers_version_is_not_touched(tmp_path: Path) -> None:
    """Another process's unfinished version stays while that process lives."""
    target = tmp_path / "snapshot"
    write_snapshot(target, small_tables(), created_at="A")
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            busy = target.with_name("snapshot.versions") / f"20990101T000000000000Z-{other.pid}-abcdef12"
            busy.mkdir()
            write_snapshot(target, small_tables(), created_at="B")
            assert busy.is_dir()
        finally:
            other.kill()
    recover(target)
    assert not busy.exists()
