"""The Prefect custom-run form of the train deployment, in a real headless Chromium against a real
`prefect server start` on 127.0.0.1: every field explained, a valid run created from the form,
an invalid device refused at submit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.graph_store.neo4j_testing import free_port

pytestmark = pytest.mark.slow


def _api(url: str, path: str, body: dict | None = None) -> object:
    request = urllib.request.Request(
        url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.load(reply)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`prefect server start` on a free port; the UI finds the API through PREFECT_UI_API_URL."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-home")),
        "PREFECT_API_URL": api,
        "PREFECT_UI_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
    proc = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                if _api(api, "/health") is True:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert proc.poll() is None, "prefect server start exited"
            assert time.monotonic() < deadline, "prefect server did not answer within 240 s"
            time.sleep(1)
        yield api
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def train_deployment(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The train deployment as `cinegraph serve --mirror --out` registers it (registered from
    another process: the browser's event loop runs in this one)."""
    out = tmp_path_factory.mktemp("served-out")
    code = (
        "import sys; from pathlib import Path; from cinegraph.flows.deployments import build_deployments; "
        "(d,) = [d for d in build_deployments(mirror='/srv/mirror', out=Path(sys.argv[1])) if d.name == 'train']; "
        "print(d.apply())"
    )
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def _runs(api: str, deployment: str) -> list[dict]:
    return _api(api, "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployment]}}})


def test_custom_run_form_explains_every_field_and_creates_a_valid_run(
    chromium, prefect_server: str, train_deployment: str
) -> None:
    ui = prefect_server.removesuffix("/api")
    page = chromium.new_page(viewport={"width": 1400, "height": 3000})
    try:
        page.goto(f"{ui}/deployments/deployment/{train_deployment}/run")
        page.get_by_text("GCN learning rate").first.wait_for(timeout=120_000)  # nested models rendered
        shown = page.inner_text("body")
        for text in (
            "each run writes its checkpoints, curves and report to OUT/RUN_NAME",
            "GCN learning rate",
            "cpu, or cuda (an NVIDIA GPU)",
            "relationship types to include",
            "Write back to Neo4j",
        ):
            assert text in shown, text
        assert 'Property is type "None"' not in shown and "Gcn Lr" not in shown
        before = len(_runs(prefect_server, train_deployment))
        page.get_by_role("button", name="Submit").click()
        page.wait_for_url("**/deployments/deployment/*?tab=Runs", timeout=60_000)
    finally:
        page.close()
    runs = _runs(prefect_server, train_deployment)
    assert len(runs) == before + 1
    params = runs[0]["parameters"]["params"]
    assert params["model"]["device"] == "cpu" and params["snapshot"].endswith("served-out0/snapshot")
    assert "write_back" not in params  # left empty: decided by the run


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"model": {"device": "gpu"}}, "'gpu' is not one of ['cpu', 'cuda']"),
        ({"seeds": [1, 1]}, "[1, 1] has non-unique elements"),
        ({"subgraph": {"edge_types": ["LIKED"]}}, "'LIKED' is not one of ['RATED'"),
        ({"model": {"hgt_weights": {"genre": -1}}}, "-1 is less than the minimum of 0"),
        ({"run_name": ".."}, "does not match"),
        ({"model": {"ks": [0, -3]}}, "is less than the minimum of 1"),
    ],
)
def test_invalid_parameters_are_refused_at_submit(
    prefect_server: str, train_deployment: str, params: dict, reason: str
) -> None:
    before = len(_runs(prefect_server, train_deployment))
    with pytest.raises(urllib.error.HTTPError) as info:
        _api(prefect_server, f"/deployments/{train_deployment}/create_flow_run", {"parameters": {"params": params}})
    assert info.value.code == 409 and reason in info.value.read().decode()
    assert len(_runs(prefect_server, train_deployment)) == before
