"""flows/cli.py: the parser of every subcommand, and the exit codes a user sees (0 ok, 2 a usage or
input error in one line, never a traceback), through the real console entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cinegraph.flows.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {"neo4j", "cypher", "export", "load", "etl", "demo", "serve", "train", "benchmark", "tune"}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``cinegraph ARGS`` as a separate process, run from this checkout."""
    command = [sys.executable, "-m", "cinegraph.flows.cli", *args]
    env = env if env is not None else dict(os.environ)
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)


def test_every_subcommand_is_registered() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == COMMANDS


def test_defaults_and_conversions() -> None:
    parser = build_parser()
    etl = parser.parse_args(["etl"])
    assert (etl.variant, etl.match, etl.out, etl.overrides) == ("ml-latest-small", "links", Path("out"), None)
    neo4j = parser.parse_args(["neo4j", "start", "--port", "7711", "--home", "h"])
    assert (neo4j.action, neo4j.port, neo4j.home, neo4j.heap_mb) == ("start", 7711, Path("h"), 1024)
    cypher = parser.parse_args(["cypher", "also_rated", "--param", "movie_id=1", "--param", "k=5"])
    assert cypher.param == ["movie_id=1", "k=5"] and cypher.database == "neo4j"
    bench = parser.parse_args(["benchmark", "--snapshot", "s", "--out", "o", "--device", "cuda"])
    assert (bench.snapshot, bench.seeds, bench.device, bench.models) == (Path("s"), 3, "cuda", None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--out", "o"], "the following arguments are required: --snapshot"),
        (["train", "--snapshot", "s", "--out", "o", "--device", "gpu"], "argument --device: invalid choice: 'gpu'"),
        (["etl", "--match", "exact"], "argument --match: invalid choice: 'exact'"),
        (["neo4j", "restart"], "argument action: invalid choice: 'restart'"),
        (["load", "--snapshot", "s", "--batch-size", "many"], "argument --batch-size: 'many' is not an integer"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_input_errors_are_one_line_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["etl", "--variant", "ml-2m", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cinegraph etl: error: --variant: ") and "'ml-latest-small'" in err
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_console_script_error_paths(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
    load = _cli("load", "--snapshot", str(tmp_path), env=env)
    assert load.returncode == 2 and load.stdout == ""
    assert load.stderr.splitlines()[-1].startswith("cinegraph load: error: NEO4J_PASSWORD is not set")
    assert "Traceback" not in load.stderr

    usage = _cli("export", "--year-min", "1990")
    assert usage.returncode == 2 and "the following arguments are required: --out" in usage.stderr


def test_console_script_help_lists_the_commands() -> None:
    help_ = _cli("--help")
    assert help_.returncode == 0
    assert all(command in help_.stdout for command in COMMANDS)
