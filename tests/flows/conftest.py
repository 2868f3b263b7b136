"""Flow-test fixtures: ONE Prefect test harness for the session, a tiny mirror, a flaky server.

The tiny mirror is written in the official formats and laid out like the real one, small enough
that a whole refresh + train runs in seconds, yet every stage has work: 40 movies that fuzzy-match
IMDb titles (plus one with no IMDb counterpart), users with a taste for genres so the models see
signal, tags, links, people with crew and principal rows.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import random
import shutil
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

VARIANT = "ml-latest-small"
GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"]
WORDS_A = ["Silent", "Crimson", "Broken", "Golden", "Hidden", "Frozen", "Last", "Electric"]
WORDS_B = ["River", "Empire", "Garden", "Harbor", "Machine", "Station"]
N_USERS = 30


def _titles() -> list[tuple[str, int]]:
    names = [f"The {a} {b}" for a in WORDS_A for b in WORDS_B][:40]
    return [(name, 1960 + (i * 7) % 55) for i, name in enumerate(names)]


def build_mirror(root: Path, seed: int = 7) -> Path:
    """Write ``root/movielens/ml-latest-small.zip`` (+ .md5) and ``root/imdb/*.tsv.gz``."""
    rng = random.Random(seed)
    titles = _titles()
    movies, links, basics, ratings_imdb, crew, principals, people = [], [], [], [], [], [], []
    movie_genres: dict[int, list[str]] = {}
    for i, (name, year) in enumerate(titles):
        movie_id, tconst = i + 1, f"tt{1000001 + i:07d}"
        genres = rng.sample(GENRES, k=rng.choice([1, 2]))
        movie_genres[movie_id] = genres
        title = f"{name[4:]}, The ({year})" if i % 5 == 0 else f"{name} ({year})"
        movies.append(f'{movie_id},"{title}",{"|".join(genres)}')
        links.append(f"{movie_id},{tconst[2:]},{500 + i}")
        basics.append(f"{tconst}\tmovie\t{name}\t{name}\t0\t{year}\t\\N\t{80 + i}\t{','.join(genres)}")
        ratings_imdb.append(f"{tconst}\t{5 + (i % 40) / 10:.1f}\t{100 + 37 * i}")
        director, actor = f"nm{2000001 + i % 12:07d}", f"nm{2000101 + i % 15:07d}"
        crew.append(f"{tconst}\t{director}\t{director}")
        principals.append(f'{tconst}\t1\t{actor}\tactor\t\\N\t["Hero {i}"]')
        principals.append(f"{tconst}\t2\t{director}\tdirector\t\\N\t\\N")
    movies.append('41,"Nowhere In Particular (2003)",(no genres listed)')
    links.append("41,9999999,999")
    basics.append("tt0000001\tshort\tCarmencita\tCarmencita\t0\t1894\t\\N\t1\tDocumentary,Short")
    for k in range(12):
        known = ",".join(f"tt{1000001 + j:07d}" for j in range(k, 40, 12)[:3])
        people.append(f"nm{2000001 + k:07d}\tDirector {k}\t{1930 + k}\t\\N\tdirector,writer\t{known}")
    for k in range(15):
        known = ",".join(f"tt{1000001 + j:07d}" for j in range(k, 40, 15)[:2])
        people.append(f"nm{2000101 + k:07d}\tActor {k}\t{1940 + k}\t\\N\tactor\t{known}")

    ratings, tags = [], []
    for user in range(1, N_USERS + 1):
        liked = set(rng.sample(GENRES, k=2))
        for movie_id in sorted(rng.sample(range(1, 42), k=18)):
            fond = bool(liked & set(movie_genres.get(movie_id, [])))
            stars = rng.choice([4.0, 4.5, 5.0] if fond else [1.0, 2.5, 3.0, 4.0])
            ratings.append(f"{user},{movie_id},{stars},{1_500_000_000 + user * 1000 + movie_id}")
            if stars == 5.0 and user % 3 == 0:
                tags.append(f"{user},{movie_id},favourite,{1_500_000_100 + user * 1000 + movie_id}")

    ml = root / "movielens"
    ml.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        files = {
            "movies.csv": ["movieId,title,genres", *movies],
            "ratings.csv": ["userId,movieId,rating,timestamp", *ratings],
            "tags.csv": ["userId,movieId,tag,timestamp", *tags],
            "links.csv": ["movieId,imdbId,tmdbId", *links],
        }
        for name, lines in files.items():
            zf.writestr(f"{VARIANT}/{name}", "\n".join(lines) + "\n")
    data = buf.getvalue()
    (ml / f"{VARIANT}.zip").write_bytes(data)
    (ml / f"{VARIANT}.zip.md5").write_text(f"{hashlib.md5(data).hexdigest()}  {VARIANT}.zip\n")

    imdb = root / "imdb"
    imdb.mkdir(parents=True, exist_ok=True)
    tables = {
        "title.basics": (
            "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\truntimeMinutes\tgenres",
            sorted(basics),
        ),
        "title.ratings": ("tconst\taverageRating\tnumVotes", ratings_imdb),
        "title.crew": ("tconst\tdirectors\twriters", crew),
        "title.principals": ("tconst\tordering\tnconst\tcategory\tjob\tcharacters", principals),
        "name.basics": ("nconst\tprimaryName\tbirthYear\tdeathYear\tprimaryProfession\tknownForTitles", people),
    }
    for name, (header, rows) in tables.items():
        payload = ("\n".join([header, *rows]) + "\n").encode()
        (imdb / f"{name}.tsv.gz").write_bytes(gzip.compress(payload, mtime=0))
    return root


@pytest.fixture(scope="session", autouse=True)
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect server and database shared by every flow test of the run."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def tiny_mirror_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mirror(tmp_path_factory.mktemp("tiny-mirror"))


@pytest.fixture(scope="session")
def tiny_snapshot(tiny_mirror_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny mirror through the plain ETL once per session (what the train flow reads)."""
    from cinegraph.etl.config import EtlConfig
    from cinegraph.etl.pipeline import run_etl

    out = tmp_path_factory.mktemp("tiny-etl")
    return run_etl(EtlConfig(mirror=str(tiny_mirror_dir), out=out, progress=False)).snapshot


@dataclass
class Upstream:
    """What the test server saw and what it should do: ``fail[path] = n`` answers the next n
    GETs of that path with ``status``; every GET takes ``delay_s``."""

    base: str
    root: Path
    gets: Counter = field(default_factory=Counter)
    fail: dict[str, int] = field(default_factory=dict)
    status: int = 503
    delay_s: float = 0.0  # a slow network: each GET waits this long
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(http.server.SimpleHTTPRequestHandler):
    upstream: Upstream

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        up = self.upstream
        with up.lock:
            up.gets[self.path] += 1
            failing = up.fail.get(self.path, 0) > 0
            if failing:
                up.fail[self.path] -= 1
        time.sleep(up.delay_s)
        if failing:
            self.send_error(up.status, "injected failure")
            return
        super().do_GET()


@pytest.fixture
def upstream(tiny_mirror_dir: Path, tmp_path: Path) -> Iterator[Upstream]:
    """A real HTTP server on 127.0.0.1 serving a copy of the tiny mirror, with injectable failures."""
    root = shutil.copytree(tiny_mirror_dir, tmp_path / "www")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    up = Upstream(base=f"http://127.0.0.1:{server.server_address[1]}", root=root)
    handler = type("Handler", (_Handler,), {"upstream": up})
    server.RequestHandlerClass = functools.partial(handler, directory=str(root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield up
    finally:
        server.shutdown()
        server.server_close()
