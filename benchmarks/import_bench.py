"""Import throughput and dedup quality (issue 2).

Generates N leads with planted fuzzy duplicates (seeded), preloads a database with
``--preload`` leads through the real import, then times ``leadflow import`` of the new file
end to end (parse, normalise, dedup against the file and the database, enrich, insert) in a
subprocess, and — in the same run, on a copy of the same preloaded database — a raw bulk
insert of the same rows into the same schema (executemany on SQLite, COPY on PostgreSQL).
Reports rows/s, the ratio, peak RSS of the importing process, and pairwise dedup precision
and recall against the planted truth.

    python benchmarks/import_bench.py --engines sqlite,postgres --rows 1000000 \
        --preload 1000000 --runs 3 --json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).parent))
from common import Database, emit, fresh_database, median, workdir
from leadflow.db import make_engine
from leadflow.demo.generator import (
    FILE_HEADERS,
    CompanyPool,
    generate_leads,
    write_firmographics,
    write_lead_file,
)

SEED = 20261126


def build_files(rows: int, preload: int, dup_rate: float, out: Path) -> dict[str, Path]:
    """Write the preload file, the import file, the firmographics and the truth table."""
    tag = f"{preload}_{rows}_{dup_rate}_{SEED}"
    paths = {
        "preload": out / f"preload_{tag}.csv",
        "import": out / f"import_{tag}.csv",
        "truth": out / f"truth_{tag}.csv",
        "firms": out / f"firms_{tag}.csv",
    }
    if all(p.exists() for p in paths.values()):
        return paths
    pool = CompanyPool.generate(max(1000, (preload + rows) // 20), SEED)
    write_firmographics(paths["firms"], pool)
    leads = list(generate_leads(preload + rows, seed=SEED, dup_rate=dup_rate, companies=pool))
    for i, lead in enumerate(leads):
        lead.record["external_id"] = f"r{i}"
    with paths["truth"].open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["external_id", "person_id", "kind"])
        writer.writerows((f"r{i}", lead.person_id, lead.kind) for i, lead in enumerate(leads))
    write_lead_file(paths["preload"], leads[:preload], fmt="csv", headers="en")
    write_lead_file(paths["import"], leads[preload:], fmt="csv", headers="en")
    return paths


def run_cli(args: list[str], url: str) -> tuple[dict[str, Any], float]:
    """Run a leadflow command in a subprocess on ``url``; its JSON output and seconds."""
    env = {**os.environ, "LEADFLOW_DATABASE_URL": url}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "leadflow", *args, "--json"], env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"leadflow {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), seconds


def raw_insert(db: Database, path: Path) -> float:
    """Plain bulk insert of the file's rows as leads + touchpoints; returns seconds."""
    now = datetime.now(UTC)
    engine = make_engine(db.url)  # same pragmas as the import's engine
    started = time.perf_counter()
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        chunk: list[dict[str, str]] = []
        for row in reader:
            chunk.append(row)
            if len(chunk) >= 5000:
                _raw_chunk(engine, db.engine, chunk, now)
                chunk = []
        if chunk:
            _raw_chunk(engine, db.engine, chunk, now)
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


_LEAD_COLS = ("id", "name", "phone", "email", "company", "city", "address", "title",
              "status", "tags", "custom_fields", "do_not_contact", "source", "created_at",
              "updated_at")
_TP_COLS = ("lead_id", "original_lead_id", "source", "external_id", "received_at", "payload")


def _raw_chunk(engine: Any, kind: str, file_rows: list[dict[str, str]], now: datetime) -> None:
    # The file has English headers; the raw insert takes the columns as they are.
    rows = [{field: r.get(label, "") for field, label in FILE_HEADERS["en"].items()} | {"_": r}
            for r in file_rows]
    with engine.begin() as conn:
        if kind == "postgres":
            ids = [r[0] for r in conn.exec_driver_sql(
                f"SELECT nextval('lead_id_seq') FROM generate_series(1, {len(rows)})")]
            raw = conn.connection.driver_connection
            with raw.cursor() as cur:
                with cur.copy(f"COPY lead ({','.join(_LEAD_COLS)}) FROM STDIN") as copy:
                    for lead_id, r in zip(ids, rows, strict=True):
                        copy.write_row((lead_id, r.get("name"), r.get("phone"), r.get("email"),
                                        r.get("company"), r.get("city"), r.get("address"),
                                        r.get("title"), "new", "[]", "{}", False, "raw", now,
                                        now))
                with cur.copy(f"COPY touchpoint ({','.join(_TP_COLS)}) FROM STDIN") as copy:
                    for lead_id, r in zip(ids, rows, strict=True):
                        copy.write_row((lead_id, lead_id, "raw", r["external_id"], now,
                                        json.dumps({"raw": r["_"]}, ensure_ascii=False)))
            return
        start = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM lead")).scalar_one() + 1
        ids = list(range(start, start + len(rows)))
        ts = now.replace(tzinfo=None).isoformat(sep=" ")
        conn.exec_driver_sql(
            f"INSERT INTO lead ({','.join(_LEAD_COLS)}) VALUES ({','.join('?' * len(_LEAD_COLS))})",
            [(i, r.get("name"), r.get("phone"), r.get("email"), r.get("company"), r.get("city"),
              r.get("address"), r.get("title"), "new", "[]", "{}", 0, "raw", ts, ts)
             for i, r in zip(ids, rows, strict=True)],
        )
        conn.exec_driver_sql(
            f"INSERT INTO touchpoint ({','.join(_TP_COLS)}) VALUES (?,?,?,?,?,?)",
            [(i, i, "raw", r["external_id"], ts, json.dumps({"raw": r["_"]}, ensure_ascii=False))
             for i, r in zip(ids, rows, strict=True)],
        )


def dedup_quality(db: Database, truth_path: Path) -> dict[str, Any]:
    """Pairwise precision/recall of lead clusters against the planted persons."""
    truth: dict[str, tuple[int, str]] = {}
    with truth_path.open() as fh:
        for row in csv.DictReader(fh):
            truth[row["external_id"]] = (int(row["person_id"]), row["kind"])
    engine = create_engine(db.url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT external_id, lead_id FROM touchpoint")).all()
    engine.dispose()
    by_pair: Counter[tuple[int, int]] = Counter()
    by_lead: Counter[int] = Counter()
    by_person: Counter[int] = Counter()
    lead_of_person_first: dict[int, int] = {}
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    ordered = sorted(rows, key=lambda r: int(r[0][1:]))
    for external_id, lead_id in ordered:
        person, kind = truth[external_id]
        by_pair[(lead_id, person)] += 1
        by_lead[lead_id] += 1
        by_person[person] += 1
        first = lead_of_person_first.setdefault(person, lead_id)
        if kind != "original":
            kinds[kind][0] += 1
            kinds[kind][1] += int(lead_id == first)

    def pairs(counter: Counter[Any]) -> int:
        return sum(n * (n - 1) // 2 for n in counter.values())

    tp, predicted, actual = pairs(by_pair), pairs(by_lead), pairs(by_person)
    return {
        "records": len(rows),
        "precision": tp / predicted if predicted else 1.0,
        "recall": tp / actual if actual else 1.0,
        "recall_by_kind": {k: round(found / total, 4)
                           for k, (total, found) in sorted(kinds.items())},
    }


def peak_rss_mb() -> float:
    """Largest resident set of any finished child process, in MiB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def bench_engine(engine: str, files: dict[str, Path], runs: int, rows: int) -> dict[str, Any]:
    """Preload, then time import vs raw insert ``runs`` times on ``engine``."""
    work = workdir()
    base = fresh_database(engine, "lf_bench_base", work)
    run_cli(["enrich", "load", str(files["firms"])], base.url)
    preload, preload_s = run_cli(["import", str(files["preload"]), "--source", "bench"], base.url)
    import_rates, raw_rates, summaries = [], [], []
    quality: dict[str, Any] = {}
    for i in range(runs):
        target = base.clone("imp")
        summary, seconds = run_cli(["import", str(files["import"]), "--source", "bench"],
                                   target.url)
        import_rates.append(rows / seconds)
        summaries.append(summary)
        if i == 0:
            quality = dedup_quality(target, files["truth"])
        target.drop()
        raw_db = base.clone("raw")
        raw_rates.append(rows / raw_insert(raw_db, files["import"]))
        raw_db.drop()
    base.drop()
    return {
        "engine": engine,
        "preload_rows": preload["rows_read"],
        "preload_seconds": round(preload_s, 1),
        "import_rows_per_s": [round(r) for r in import_rates],
        "raw_rows_per_s": [round(r) for r in raw_rates],
        "import_median": round(median(import_rates)),
        "raw_median": round(median(raw_rates)),
        "ratio_raw_over_import": round(median(raw_rates) / median(import_rates), 2),
        "peak_rss_mib": round(peak_rss_mb()),
        "last_summary": summaries[-1],
        "dedup": quality,
    }


def main() -> None:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--preload", type=int, default=1_000_000)
    parser.add_argument("--dup-rate", type=float, default=0.10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    files = build_files(args.rows, args.preload, args.dup_rate, workdir())
    results = [bench_engine(e.strip(), files, args.runs, args.rows)
               for e in args.engines.split(",") if e.strip()]
    table_rows = [
        [r["engine"], f"{r['import_median']:,}", f"{r['raw_median']:,}",
         f"{r['ratio_raw_over_import']}x", f"{r['peak_rss_mib']}",
         f"{r['dedup']['precision']:.4f}", f"{r['dedup']['recall']:.4f}"]
        for r in results
    ]
    emit({"benchmark": "import", "seed": SEED, "rows": args.rows, "preload": args.preload,
          "dup_rate": args.dup_rate, "runs": args.runs, "results": results},
         as_json=args.json,
         title=f"import {args.rows:,} rows into {args.preload:,} (median of {args.runs})",
         headers=["engine", "import rows/s", "raw insert rows/s", "raw/import", "peak MiB",
                  "dedup precision", "dedup recall"],
         rows=table_rows)


if __name__ == "__main__":
    main()
