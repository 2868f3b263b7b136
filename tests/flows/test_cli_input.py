"""Bad input to the `cinegraph` commands: refused before any work, with one line naming the field
and the reason (exit status 2), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cinegraph.flows.cli import main


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses a malformed argument itself
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err and "Traceback" not in err
    return err.splitlines()[-1]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"device": "gpu"}, "device: Input should be 'cpu' or 'cuda'"),
        ({"ks": [0, -3]}, "ks.0: Input should be greater than or equal to 1; ks.1: Input should be greater"),
        ({"ks": [10]}, "ks=[10] must include 20"),
        ([1, 2], "expected a JSON object of TrainConfig fields, got list"),
        ({"gcn_weights": {"rec": -1}}, "gcn_weights.rec: Input should be greater than or equal to 0"),
        ({"fusion_weights": {"rec": 1, "rating": 0.5}}, "only the GCN branch has a rating head"),
    ],
)
def test_train_config_errors_are_one_line(
    config: object, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    line = _one_line_error(
        capsys, ["train", "--snapshot", str(tmp_path), "--out", str(tmp_path / "run"), "--config", str(path)]
    )
    assert line.startswith(f"cinegraph train: error: --config {path}: ") and message in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("bolt://host:notaport", "Port could not be cast to integer"),
        ("http://127.0.0.1:7474", "the scheme must be"),
        ("bolt://", "no host"),
    ],
)
def test_a_malformed_neo4j_uri_is_one_line(
    uri: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEO4J_URI", uri)
    monkeypatch.setenv("NEO4J_PASSWORD", "any-password")
    line = _one_line_error(capsys, ["cypher", "genre_cooccurrence"])
    assert line.startswith(f"cinegraph cypher: error: NEO4J_URI={uri!r}: ") and message in line


@pytest.mark.parametrize("size", ["0", "-5", "many"])
def test_batch_size_must_be_a_positive_integer(size: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_line_error(capsys, ["load", "--snapshot", str(tmp_path), "--batch-size", size])
    assert "argument --batch-size" in line
