"""The train flow's parameters are plain pydantic models: building the form imports no backend."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "torch_geometric", "neo4j", "prefect")


def test_train_params_import_no_backend() -> None:
    code = f"import sys; import cinegraph.flows.train_params; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert proc.stdout.strip() == ""
