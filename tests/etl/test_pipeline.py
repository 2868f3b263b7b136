"""run_etl end to end: on a tiny mirror written here (fast) and on the real mirror (realdata)."""

from __future__ import annotations

import gzip
import hashlib
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cinegraph import schema
from cinegraph.errors import CinegraphError
from cinegraph.etl.config import EtlConfig
from cinegraph.etl.match import MatchConfig
from cinegraph.etl.pipeline import run_etl, summarize
from cinegraph.flows.cli import main
from cinegraph.graph_store.snapshot_io import read_manifest, read_snapshot

ML = {
    "movies.csv": "movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n"
    '2,"Great Escape, The (1963)",Adventure|War\n3,Nowhere To Be Found (1977),Drama\n',
    "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,5.0,964982704\n2,3,3.5,964982705\n",
    "tags.csv": "userId,movieId,tag,timestamp\n2,1,pixar,1445714994\n",
    "links.csv": "movieId,imdbId,tmdbId\n1,0114709,862\n2,0057115,5925\n3,0099999,\n",
}
IMDB = {
    "title.basics": [
        "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\truntimeMinutes\tgenres",
        "tt0057115\tmovie\tThe Great Escape\tThe Great Escape\t0\t1963\t\\N\t172\tAdventure,War",
        "tt0114709\tmovie\tToy Story\tToy Story\t0\t1995\t\\N\t81\tAnimation,Comedy",
        "tt0114710\ttvEpisode\tToy Story\tToy Story\t0\t1995\t\\N\t22\tComedy",
    ],
    "title.ratings": ["tconst\taverageRating\tnumVotes", "tt0114709\t8.3\t1000000"],
    "title.crew": ["tconst\tdirectors\twriters", "tt0114709\tnm0005124\tnm0005124,nm0230032"],
    "name.basics": [
        "nconst\tprimaryName\tbirthYear\tdeathYear\tprimaryProfession\tknownForTitles",
        "nm0005124\tJohn Lasseter\t1957\t\\N\tproducer,writer\ttt0114709",
        "nm0000537\tSteve McQueen\t1930\t1980\tactor\ttt0057115",
    ],
}


def make_mirror(root: Path) -> Path:
    """The mirror layout with ml-latest-small.zip (+ .md5) and four IMDb files (no akas or
    principals: both optional)."""
    (root / "movielens").mkdir(parents=True)
    zip_path = root / "movielens" / "ml-latest-small.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for name, text in ML.items():
            zf.writestr(f"ml-latest-small/{name}", text)
    md5 = hashlib.md5(zip_path.read_bytes()).hexdigest()
    (root / "movielens" / "ml-latest-small.zip.md5").write_text(f"{md5}  ml-latest-small.zip\n")
    (root / "imdb").mkdir()
    for name, lines in IMDB.items():
        (root / "imdb" / f"{name}.tsv.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return root


@pytest.mark.parametrize("mode", ["links", "fuzzy"])
def test_run_etl_on_a_tiny_mirror(tmp_path: Path, mode: str) -> None:
    config = EtlConfig(
        mirror=str(make_mirror(tmp_path / "mirror")), out=tmp_path / "out", match=MatchConfig(mode=mode), progress=False
    )
    result = run_etl(config)
    assert result.snapshot == tmp_path / "out" / "snapshot"
    t = read_snapshot(result.snapshot)
    counts = {k: v.num_rows for k, v in t.items() if v.num_rows}
    assert counts == {
        "User": 2,
        "Movie": 3,
        "Genre": 5,
        "Person": 2,
        "RATED": 3,
        "TAGGED": 1,
        "IN_GENRE": 5,
        "DIRECTED": 1,
        "WROTE": 1,
        "KNOWN_FOR": 2,
    }
    movies = {r["movie_id"]: r for r in t["Movie"].to_pylist()}
    assert (movies[1]["tconst"], movies[1]["imdb_rating"], movies[1]["runtime"]) == ("tt0114709", 8.3, 81)
    # Movie 3's link points to a title absent from title.basics: trusted in links mode, without
    # title properties; fuzzy matching has nothing to find for it.
    linked = mode == "links"
    assert movies[3]["tconst"] == ("tt0099999" if linked else None) and movies[3]["runtime"] is None
    manifest = read_manifest(result.snapshot)
    assert manifest["counts"]["nodes"]["Movie"] == 3
    assert manifest["match"]["mode"] == mode and manifest["match"]["matched"] == 2 + linked
    assert manifest["match"]["evaluation"]["truth_pairs"] == 2
    assert manifest["rejects"] == dict.fromkeys(sorted(manifest["rejects"]), 0)
    sources = {s["file"]: s for s in manifest["sources"]}
    assert sources["ml-latest-small.zip/ratings.csv"]["rows"] == 3
    assert sources["title.principals.tsv.gz"]["status"] == "missing"
    assert sources["title.basics.tsv.gz"]["rows"] == 2  # the tvEpisode is not film-like
    assert pq.read_table(result.snapshot / schema.MATCHES_FILE).num_rows == 3
    text = summarize(result)
    assert "Movie 3" in text and f"matching ({mode}): {2 + linked} matched, {1 - linked} unmatched" in text
    assert str(result.snapshot) in text


def test_failed_run_leaves_previous_snapshot(tmp_path: Path) -> None:
    mirror = make_mirror(tmp_path / "mirror")
    config = EtlConfig(mirror=str(mirror), out=tmp_path / "out", progress=False)
    first = run_etl(config)
    before = {p: p.read_bytes() for p in first.snapshot.rglob("*") if p.is_file()}
    (mirror / "imdb" / "name.basics.tsv.gz").write_bytes(gzip.compress(b"nconst\tname\n"))
    with pytest.raises(CinegraphError, match=r"name\.basics\.tsv\.gz: wrong header"):
        run_etl(config)
    assert {p: p.read_bytes() for p in first.snapshot.rglob("*") if p.is_file()} == before


def test_cli_etl(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CINEGRAPH_MIRROR", str(make_mirror(tmp_path / "mirror")))
    assert main(["etl", "--out", str(tmp_path / "out"), "--match", "fuzzy", "--no-progress"]) == 0
    assert f"snapshot: {tmp_path / 'out' / 'snapshot'}" in capsys.readouterr().out
    assert main(["etl", "--variant", "ml-2k", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cinegraph etl: error: --variant:") and err.count("\n") == 1


@pytest.mark.realdata
@pytest.mark.slow
def test_real_mirror_counts_and_identical_rerun(real_snapshot: Path, mirror: Path) -> None:
    first = read_snapshot(real_snapshot)
    assert {k: first[k].num_rows for k in ("User", "Movie", "RATED", "TAGGED")} == {
        "User": 610,
        "Movie": 9742,
        "RATED": 100836,
        "TAGGED": 3683,
    }
    assert read_manifest(real_snapshot)["rejects"] == dict.fromkeys(read_manifest(real_snapshot)["rejects"], 0)
    # Rerun over the same output folder and the unchanged mirror: the same tables, row for row.
    config = EtlConfig(mirror=str(mirror), out=real_snapshot.parent, match=MatchConfig(mode="links"), progress=False)
    second = run_etl(config)
    assert second.snapshot == real_snapshot
    again = read_snapshot(second.snapshot)
    assert second.manifest["counts"] == read_manifest(real_snapshot)["counts"]
    for name, table in first.items():
        assert again[name].equals(table), name
