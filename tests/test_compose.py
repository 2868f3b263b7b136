"""docker-compose.yml and .env.example: checked as YAML everywhere, and by `docker compose config`
where a compose client exists (no Docker engine needed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
MAKEFILE = ROOT / "Makefile"


def _compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) or `docker-compose` (v1), whichever answers."""
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) and subprocess.run([*cmd, "version"], capture_output=True).returncode == 0:
            return cmd
    return None


def _env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and line[0] != "#")
    return {k.strip(): v.strip() for k, v in pairs}


def test_compose_file_structure() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    neo4j, prefect = spec["services"]["neo4j"], spec["services"]["prefect-server"]
    assert neo4j["image"] == "neo4j:5.26-community"
    assert neo4j["environment"]["NEO4J_AUTH"].startswith("neo4j/${NEO4J_PASSWORD:?")
    assert {"neo4j-data:/data", "neo4j-logs:/logs"} <= set(neo4j["volumes"])
    # LOAD CSV cannot read the server's files, as with the embedded server.
    assert neo4j["environment"]["NEO4J_dbms_security_allow__csv__import__from__file__urls"] == "false"
    assert prefect["image"].startswith("prefecthq/prefect:3")
    for service in (neo4j, prefect):
        assert service["healthcheck"]["test"]
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    assert {"neo4j-data", "neo4j-logs", "prefect-data"} <= set(spec["volumes"])


def test_worker_installs_the_lock_with_the_makefiles_uv() -> None:
    """The worker and `make install` install the same pins with the same uv."""
    command = " ".join(yaml.safe_load(COMPOSE.read_text())["services"]["worker"]["command"])
    uv_version = re.search(r"^UV_VERSION\s*:=\s*(\S+)$", MAKEFILE.read_text(), re.MULTILINE)
    assert uv_version is not None
    assert f"uv=={uv_version[1]}" in command
    assert "uv sync --frozen" in command and "pip install -q -e" not in command


def test_env_example_covers_every_variable() -> None:
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", COMPOSE.read_text()))  # $${...} is escaped
    example = _env_example()
    assert used <= set(example), used - set(example)
    assert len(example["NEO4J_PASSWORD"]) >= 8


@pytest.mark.parametrize("with_password", [True, False])
def test_docker_compose_config(tmp_path: Path, with_password: bool) -> None:
    cmd = _compose_command()
    if cmd is None:
        pytest.skip("no docker compose client on this machine")
    env_file = tmp_path / ".env"
    env_file.write_text("NEO4J_PASSWORD=compose-test-password\n" if with_password else "")
    env = {k: v for k, v in os.environ.items() if k not in _env_example()}
    proc = subprocess.run(
        [*cmd, "-f", str(COMPOSE), "--env-file", str(env_file), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    if not with_password:
        assert proc.returncode != 0 and "set NEO4J_PASSWORD in .env" in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    resolved = yaml.safe_load(proc.stdout)
    assert resolved["services"]["neo4j"]["environment"]["NEO4J_AUTH"] == "neo4j/compose-test-password"
    assert {"neo4j", "prefect-server"} <= set(resolved["services"])
