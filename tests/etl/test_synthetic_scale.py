"""benchmarks/synthetic_dumps.py writes a mirror the ETL reads like the real dumps, the same bytes
for a seed; benchmarks/etl_scale.py measures the ETL on it and reports per stage."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import pytest

from benchmarks.etl_scale import review_reasons
from benchmarks.rematch import main as rematch_main
from benchmarks.synthetic_dumps import IMDB_HEADERS, Sizes, _macros, build_tables, generate, homonym_rates
from cinegraph.etl.config import EtlConfig
from cinegraph.etl.match import MatchConfig
from cinegraph.etl.pipeline import RUN_LOG_FILE, run_etl

ROOT = Path(__file__).resolve().parents[2]
SCALE = 0.0005  # 5,750 titles, 7,250 names, 31 MovieLens movies


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "mirror"
    generate(root, SCALE, "ml-25m", seed=3, threads=1)
    return root


def test_layout_and_formats(synthetic: Path) -> None:
    assert sorted(_digests(synthetic)) == [
        "imdb/name.basics.tsv.gz",
        "imdb/title.akas.tsv.gz",
        "imdb/title.basics.tsv.gz",
        "imdb/title.crew.tsv.gz",
        "imdb/title.principals.tsv.gz",
        "imdb/title.ratings.tsv.gz",
        "movielens/ml-25m.zip",
        "movielens/ml-25m.zip.md5",
    ]
    rows = {}
    for name, header in IMDB_HEADERS.items():
        lines = gzip.decompress((synthetic / "imdb" / f"{name}.tsv.gz").read_bytes()).decode().splitlines()
        assert lines[0].split("\t") == header.split(", ")
        assert all(line.count("\t") == lines[0].count("\t") for line in lines)
        rows[name] = len(lines) - 1
    assert rows["title.basics"] == rows["title.crew"] == 5_750 and rows["name.basics"] == 7_250
    assert 3.5 < rows["title.akas"] / rows["title.basics"] < 5.5  # ~52M / 11.5M at full size
    assert 7 < rows["title.principals"] / rows["title.basics"] < 9  # ~92M / 11.5M
    basics = gzip.decompress((synthetic / "imdb" / "title.basics.tsv.gz").read_bytes()).decode().splitlines()[1:]
    movies = sum(line.split("\t")[1] == "movie" for line in basics)
    assert 0.04 < movies / len(basics) < 0.08  # ~6 % movies
    with zipfile.ZipFile(synthetic / "movielens" / "ml-25m.zip") as zf:
        assert sorted(zf.namelist()) == [
            "ml-25m/links.csv",
            "ml-25m/movies.csv",
            "ml-25m/ratings.csv",
            "ml-25m/tags.csv",
        ]
        ratings = zf.read("ml-25m/ratings.csv").decode().splitlines()
        titles = zf.read("ml-25m/movies.csv").decode().splitlines()
    pairs = [tuple(r.split(",")[:2]) for r in ratings[1:]]
    assert ratings[0] == "userId,movieId,rating,timestamp" and len(set(pairs)) == len(pairs)
    assert pairs == sorted(pairs, key=lambda p: (int(p[0]), int(p[1])))
    assert titles[0] == "movieId,title,genres" and len(titles) == 1 + 31


def test_same_seed_same_bytes(synthetic: Path, tmp_path: Path) -> None:
    generate(tmp_path / "again", SCALE, "ml-25m", seed=3)
    assert _digests(tmp_path / "again") == _digests(synthetic)
    generate(tmp_path / "other", SCALE, "ml-25m", seed=4)
    assert _digests(tmp_path / "other")["imdb/title.basics.tsv.gz"] != _digests(synthetic)["imdb/title.basics.tsv.gz"]


def test_rivals_only_for_films() -> None:
    """About one MovieLens film in forty has same-title rivals (and 3 % are remakes of another);
    a MovieLens TV series has none."""
    con = duckdb.connect()
    _macros(con, 0)
    build_tables(con, Sizes.at(0.01, "ml-25m"))
    counts = dict(
        con.execute("""
        SELECT ml.title_type = 'tvSeries' AS series, avg(CAST(EXISTS (
                   SELECT 1 FROM titles t WHERE t.name_key = ml.i AND t.i <> ml.i) AS INTEGER)) AS lent
        FROM ml GROUP BY ALL""").fetchall()
    )
    assert counts[True] == 0.0  # series are picked (links.csv points at them) but lend no title
    assert 0.02 < counts[False] < 0.09  # rivals, and remakes of another MovieLens movie (3 %)


def test_akas_are_variants_of_their_own_title(tmp_path: Path) -> None:
    """Real akas are the title in other regions and languages, so an aka rarely spells another
    film's title; alternative titles in the dump's title words but sharing none with their own
    title (the working titles) stay a few percent, where random phrases made them a third and
    crowded fuzzy matching at full size."""
    generate(tmp_path / "mirror", 0.003, "ml-25m", seed=1, threads=1)  # 34,500 titles, ~3,300 films
    rates = homonym_rates(duckdb.connect(), tmp_path / "mirror" / "imdb")
    assert rates["films"] > 3_000
    assert 0.005 < rates["aka_unrelated"] < 0.08
    assert rates["aka_same_year"] < 0.001
    assert rates["same_year"] < rates["any_year"] < 0.1


def test_etl_reads_it(synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The ETL stages every file without a reject, matches by title with links.csv as the truth,
    and logs each stage's time and peak memory; matching again on a copy of its warehouse
    (benchmarks/rematch.py) decides the same."""
    result = run_etl(
        EtlConfig(
            variant="ml-25m",
            mirror=str(synthetic),
            out=tmp_path,
            match=MatchConfig(mode="fuzzy"),
            progress=False,
            threads=1,
        )
    )
    assert not any(result.stage.rejects.values())
    assert result.stage.rows["title.basics.tsv.gz"] > 1_000  # film-like types only
    evaluation = result.match.evaluation
    assert evaluation is not None and evaluation.truth_pairs >= 25
    assert evaluation.precision >= 0.99 and evaluation.recall >= 0.9
    assert result.manifest["counts"]["edges"]["RATED"] > 0 and result.manifest["counts"]["edges"]["ACTED_IN"] > 0
    run_log = json.loads((tmp_path / RUN_LOG_FILE).read_text())
    names = [s["name"] for s in run_log["stages"]]
    for stage in ("fetch", "stg_imdb_titles", "stg_imdb_akas", "stage", "match: scoring", "match", "snapshot"):
        assert stage in names
    assert all(s["peak_rss_bytes"] > 0 and s["seconds"] >= 0 for s in run_log["stages"])
    assert run_log["peak_rss_bytes"] == max(s["peak_rss_bytes"] for s in run_log["stages"])

    reasons = review_reasons(tmp_path / "match_review.csv")
    assert sum(reasons.values()) == result.match.review and set(reasons) <= {"margin", "tie", "aka", "year"}
    before = (tmp_path / "warehouse.duckdb").read_bytes()
    assert rematch_main([str(tmp_path), "--work", str(tmp_path / "again"), "--memory-limit", "500MB"]) == 0
    printed = capsys.readouterr().out
    assert f"review {result.match.review:,}, precision {evaluation.precision:.4f}" in printed
    assert "wrong fuzzy matches: " in printed
    assert (tmp_path / "warehouse.duckdb").read_bytes() == before  # the run's own warehouse is untouched
    assert (tmp_path / "again" / "match_review.csv").is_file()


@pytest.mark.slow
def test_etl_scale_main(tmp_path: Path) -> None:
    out = tmp_path / "etl_scale.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "etl_scale.py"),
            "--scales",
            "0.0003,0.0006",
            "--work",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "| 0.0003 |" in text and "| 0.0006 |" in text and "0.0003 -> 0.0006 (2x rows)" in text
    assert "|   title.akas |" in text and "| match (all) |" in text and "review by reason" in text
    assert not (tmp_path / "work" / "out-0.0006").exists()  # outputs deleted without --keep
