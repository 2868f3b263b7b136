"""Title matching alone, rerun on a copy of a finished ETL run's warehouse (staging is not repeated).

    .venv/bin/python benchmarks/rematch.py OUT [--work DIR] [--memory-limit 5GB]

Copies ``OUT/warehouse.duckdb`` into ``--work`` (the run's own files stay as they were), runs
``match_titles`` there in fuzzy mode with the default settings, and prints precision / recall
against links.csv, the movies sent to review and the wrong matches by kind. At full size this
takes a few minutes where a whole ETL run takes ten or more, so matching rules can be compared
on the same staged input.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.etl_scale import wrong_matches  # noqa: E402
from cinegraph.etl import warehouse  # noqa: E402
from cinegraph.etl.match import MatchConfig, MatchReport, match_titles  # noqa: E402
from cinegraph.etl.pipeline import REVIEW_FILE, WAREHOUSE_FILE  # noqa: E402


def rematch(out: Path, work: Path, memory_limit: str = "5GB") -> tuple[MatchReport, dict[str, int], float]:
    """Match again on a copy of ``out``'s warehouse in ``work``; the report, the wrong fuzzy
    matches by kind and the matching's wall seconds."""
    source = out / WAREHOUSE_FILE
    if not source.is_file():
        raise SystemExit(f"{source}: no warehouse; run `cinegraph etl` into {out} first")
    work.mkdir(parents=True, exist_ok=True)
    copy = work / WAREHOUSE_FILE
    shutil.copyfile(source, copy)
    con = warehouse.connect(copy, memory_limit=memory_limit)
    try:
        start = time.perf_counter()
        report = match_titles(con, MatchConfig(mode="fuzzy"), review_path=work / REVIEW_FILE)
        seconds = time.perf_counter() - start
    finally:
        con.close()
    return report, wrong_matches(copy), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output folder of a finished `cinegraph etl` run")
    parser.add_argument("--work", type=Path, default=None, help="folder for the copy (default: a temporary one)")
    parser.add_argument("--memory-limit", default="5GB", help="DuckDB memory_limit while matching")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rematch-") as tmp:
        report, wrong, seconds = rematch(args.out, args.work or Path(tmp), args.memory_limit)
    ev = report.evaluation
    quality = f"precision {ev.precision:.4f}, recall {ev.recall:.4f} over {ev.truth_pairs:,}" if ev else "no links"
    print(f"matched {report.matched:,}, review {report.review:,}, {quality} in {seconds:.0f} s")
    print("wrong fuzzy matches: " + (", ".join(f"{k} {n}" for k, n in wrong.items()) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
