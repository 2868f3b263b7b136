"""etl_refresh end to end over a real HTTP server: retries, the download cache, the lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import State, TaskRun
from prefect.settings import PREFECT_API_URL

from cinegraph.flows.params import RefreshParams
from cinegraph.flows.refresh import etl_refresh, retry_unless_4xx
from cinegraph.graph_store.snapshot_io import read_manifest, read_snapshot

ROOT = Path(__file__).resolve().parents[2]
ZIP = "/movielens/ml-latest-small.zip"
DATA_PATHS = (
    ZIP,
    "/imdb/title.basics.tsv.gz",
    "/imdb/name.basics.tsv.gz",
    "/imdb/title.crew.tsv.gz",
    "/imdb/title.principals.tsv.gz",
    "/imdb/title.ratings.tsv.gz",
)


def _params(base: str, out: Path, **kw: object) -> RefreshParams:
    return RefreshParams(out=out, mirror=base, load_neo4j=False, retry_backoff_s=0.05, progress=False, **kw)


def _task_runs(flow_run_id: UUID) -> list[TaskRun]:
    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def _task_states(flow_run_id: UUID) -> dict[str, str]:
    """Task run name -> final state name, for one flow run."""
    return {r.name: r.state.name for r in _task_runs(flow_run_id)}


def _run(params: RefreshParams) -> State:
    state = etl_refresh(params, return_state=True)
    assert state.is_completed(), state.message
    return state


def test_refresh_end_to_end_then_unchanged_upstream_skips_downloads(upstream, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _run(_params(upstream.base, out))
    manifest = read_manifest(out / "snapshot")
    assert manifest["counts"]["nodes"]["User"] == 30
    assert manifest["counts"]["nodes"]["Movie"] == 41
    assert manifest["match"]["matched"] >= 40
    assert {s["status"] for s in manifest["sources"]} >= {"downloaded", "missing"}  # title.akas absent
    states = _task_states(first.state_details.flow_run_id)
    assert states["download ml-latest-small"] == "Completed"
    assert states["download title.basics"] == "Completed"
    gets_after_first = {p: upstream.gets[p] for p in DATA_PATHS}
    assert all(n == 1 for n in gets_after_first.values()), gets_after_first

    second = _run(_params(upstream.base, out))
    states = _task_states(second.state_details.flow_run_id)
    downloads = {name: s for name, s in states.items() if name.startswith("download ")}
    assert len(downloads) == 7
    assert set(downloads.values()) == {"Cached"}, downloads
    assert {p: upstream.gets[p] for p in DATA_PATHS} == gets_after_first  # not one byte fetched
    again = read_manifest(out / "snapshot")
    assert again["counts"] == manifest["counts"]
    assert {s["status"] for s in again["sources"]} == {"not_modified", "missing"}


def test_changed_upstream_is_downloaded_again(upstream, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(_params(upstream.base, out))
    ratings = upstream.root / "imdb" / "title.ratings.tsv.gz"
    ratings.write_bytes(ratings.read_bytes())  # new Last-Modified
    import os

    os.utime(ratings, (ratings.stat().st_atime, ratings.stat().st_mtime + 10))
    states = _task_states(_run(_params(upstream.base, out)).state_details.flow_run_id)
    assert states["download title.ratings"] == "Completed"
    assert states["download title.basics"] == "Cached"


def test_transient_failures_are_retried(upstream, tmp_path: Path) -> None:
    upstream.fail = {ZIP: 2, "/imdb/name.basics.tsv.gz": 1}
    _run(_params(upstream.base, tmp_path / "out"))
    assert upstream.gets[ZIP] == 3
    assert upstream.gets["/imdb/name.basics.tsv.gz"] == 2
    assert read_snapshot(tmp_path / "out" / "snapshot")["User"].num_rows == 30


def test_client_errors_are_not_retried(upstream, tmp_path: Path) -> None:
    upstream.fail, upstream.status = {"/imdb/title.basics.tsv.gz": 1}, 403
    state = etl_refresh(_params(upstream.base, tmp_path / "out"), return_state=True)
    assert state.is_failed()
    assert upstream.gets["/imdb/title.basics.tsv.gz"] == 1
    assert not (tmp_path / "out" / "snapshot").exists()


@pytest.mark.parametrize(("status", "retry"), [(404, False), (403, False), (503, True)])
def test_retry_condition(status: int, retry: bool) -> None:
    from prefect.states import Failed

    from cinegraph.etl.download import HTTPStatusError

    state = Failed(data=HTTPStatusError("http://x/y", status, "r"))
    assert retry_unless_4xx(None, None, state) is retry  # type: ignore[arg-type]


_RUN_ONE = """
import sys, time
from pathlib import Path
from cinegraph.flows.params import RefreshParams
from cinegraph.flows.refresh import etl_refresh
from prefect import flow
flow(lambda: None, name="warm-up")()  # the first flow run of a process pays for lazy set-up
Path(sys.argv[2]).touch()
while not Path(sys.argv[3]).exists():
    time.sleep(0.01)
state = etl_refresh(RefreshParams.model_validate_json(sys.argv[1]), return_state=True)
print(state.state_details.flow_run_id)
sys.exit(0 if state.is_completed() else 1)
"""


def test_two_concurrent_refreshes_leave_one_consistent_snapshot(upstream, tmp_path: Path) -> None:
    """Two worker processes refresh the same output folder at once (same Prefect server), over a
    slow network so that, unlocked, their downloads and writes would overlap."""
    upstream.delay_s = 1.0
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(ROOT)}
    params, go = _params(upstream.base, tmp_path / "out").model_dump_json(), tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RUN_ONE, params, str(r), str(go)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ready
    ]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()  # both imported: start the two flows at the same moment
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    # The lock serialises them: one run's tasks all end before the other's first task starts.
    spans = []
    for stdout, _ in outputs:
        runs = _task_runs(UUID(stdout.strip().splitlines()[-1]))
        spans.append((min(r.start_time for r in runs), max(r.end_time for r in runs)))
    (_, first_end), (second_start, _) = sorted(spans)
    assert first_end <= second_start, spans
    tables = read_snapshot(tmp_path / "out" / "snapshot")
    assert tables["User"].num_rows == 30 and tables["RATED"].num_rows == 30 * 18
    assert not list((tmp_path / "out").glob(".snapshot-*"))  # no half-written or orphaned folder


def test_invalid_parameters_are_refused_before_any_work(tmp_path: Path) -> None:
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match="variant"):
        etl_refresh(params={"variant": "ml-99", "out": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.realdata
def test_refresh_of_the_real_mirror(mirror: Path, tmp_path: Path) -> None:
    params = RefreshParams(out=tmp_path / "out", mirror=str(mirror), load_neo4j=False, progress=False)
    _run(params)
    counts = read_manifest(tmp_path / "out" / "snapshot")["counts"]
    assert (counts["nodes"]["User"], counts["nodes"]["Movie"]) == (610, 9742)
    assert (counts["edges"]["RATED"], counts["edges"]["TAGGED"]) == (100_836, 3_683)
    states = _task_states(_run(params).state_details.flow_run_id)
    assert {s for name, s in states.items() if name.startswith("download ")} == {"Cached"}
    assert read_manifest(tmp_path / "out" / "snapshot")["counts"] == counts
