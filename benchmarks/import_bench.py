"""Import throughput and dedup quality (issue 2).

Generates N leads with planted fuzzy duplicates (seeded), preloads a database with
``--preload`` leads through the real import, then times ``leadflow import`` of the new file
end to end (parse, normalise, dedup against the file and the database, enrich, insert) in a
subprocess, and — in the same run, on a copy of the same preloaded database — a raw bulk
insert of the very rows that import wrote (leads, touchpoints, activities) into the same
schema (executemany on SQLite, COPY on PostgreSQL, 5,000 leads per transaction).
Reports rows/s, the ratio, peak RSS of the importing process, and pairwise dedup precision
and recall against the planted truth. The import rate is the import job's own time (parse to
insert, as the issue defines it); the command also scores and routes what it brought in
(issues 3 and 4), reported beside it as the end-to-end rate of the whole command.

    python benchmarks/import_bench.py --engines sqlite,postgres --rows 1000000 \
        --preload 1000000 --runs 3 --json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).parent))
from common import Database, emit, fresh_database, median, workdir
from leadflow.db import make_engine
from leadflow.demo.generator import (
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


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (the import's prepare process)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    total = 0
    for p in (str(pid), *children):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def run_cli(args: list[str], url: str) -> tuple[dict[str, Any], float, float]:
    """Run a leadflow command in a subprocess on ``url``.

    Returns its JSON output, seconds, and the peak resident memory (MiB) of the process
    tree, sampled every 100 ms from /proc (rusage would count the benchmark's own memory,
    which a fork briefly shares with the child).
    """
    env = {**os.environ, "LEADFLOW_DATABASE_URL": url}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "leadflow", *args, "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kib(proc.pid))
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"leadflow {' '.join(args)} failed with code {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1]), seconds, peak / 1024


def captured_rows(db: Database, after: dict[str, int]
                  ) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """The lead, touchpoint and activity rows an import wrote, exactly as stored."""
    engine = create_engine(db.url)
    out: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    with engine.connect() as conn:
        for table in ("lead", "touchpoint", "activity"):
            result = conn.exec_driver_sql(
                f"SELECT * FROM {table} WHERE id > {after[table]} ORDER BY id")
            # Not the import job's id: that row is not in the baseline's copy.
            columns = [c for c in result.keys()  # noqa: SIM118
                       if c not in ("import_job_id",) and (c != "id" or table == "lead")]
            rows = [tuple(r[k] for k in columns) for r in result.mappings()]
            out[table] = (columns, rows)
    engine.dispose()
    return out


def raw_insert(db: Database, data: dict[str, tuple[list[str], list[tuple[Any, ...]]]]) -> float:
    """The raw baseline: insert the very rows the import wrote into the same schema, 5,000
    rows per transaction, with executemany (SQLite) or COPY (PostgreSQL)."""
    engine = make_engine(db.url)  # same pragmas as the import's engine
    started = time.perf_counter()
    for table in ("lead", "touchpoint", "activity"):
        columns, rows = data[table]
        for start in range(0, len(rows), 5000):
            with engine.begin() as conn:
                _raw_write(conn, db.engine, table, columns, rows[start:start + 5000])
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


def _raw_write(conn: Any, kind: str, table: str, columns: list[str],
               rows: list[tuple[Any, ...]]) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    if kind == "sqlite":
        marks = ", ".join("?" * len(columns))
        conn.exec_driver_sql(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', rows)
        return
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list)
                            else v for v in row])


def max_ids(db: Database) -> dict[str, int]:
    """Highest ids per table: what the preload wrote."""
    engine = create_engine(db.url)
    with engine.connect() as conn:
        out = {t: int(conn.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {t}").scalar_one())
               for t in ("lead", "touchpoint", "activity")}
    engine.dispose()
    return out


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


def bench_engine(engine: str, files: dict[str, Path], runs: int, rows: int) -> dict[str, Any]:
    """Preload, then time import vs raw insert ``runs`` times on ``engine``."""
    work = workdir()
    base = fresh_database(engine, "lf_bench_base", work)
    run_cli(["enrich", "load", str(files["firms"])], base.url)
    preload, preload_s, _ = run_cli(["import", str(files["preload"]), "--source", "bench"],
                                    base.url)
    after = max_ids(base)
    import_rates, raw_rates, summaries, peaks, command_rates = [], [], [], [], []
    quality: dict[str, Any] = {}
    for i in range(runs):
        target = base.clone("imp")
        summary, seconds, peak = run_cli(["import", str(files["import"]), "--source", "bench"],
                                         target.url)
        import_rates.append(rows / summary["seconds"])
        command_rates.append(rows / seconds)
        peaks.append(peak)
        summaries.append(summary)
        if i == 0:
            quality = dedup_quality(target, files["truth"])
        written = captured_rows(target, after)
        target.drop()
        raw_db = base.clone("raw")
        raw_rates.append(rows / raw_insert(raw_db, written))
        raw_db.drop()
    base.drop()
    return {
        "engine": engine,
        "preload_rows": preload["rows_read"],
        "preload_seconds": round(preload_s, 1),
        "import_rows_per_s": [round(r) for r in import_rates],
        "raw_rows_per_s": [round(r) for r in raw_rates],
        "import_median": round(median(import_rates)),
        "command_rows_per_s": [round(r) for r in command_rates],
        "command_median": round(median(command_rates)),
        "raw_median": round(median(raw_rates)),
        "ratio_raw_over_import": round(median(raw_rates) / median(import_rates), 2),
        "peak_rss_mib": round(max(peaks)),
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
         f"{r['ratio_raw_over_import']}x", f"{r['command_median']:,}", f"{r['peak_rss_mib']}",
         f"{r['dedup']['precision']:.4f}", f"{r['dedup']['recall']:.4f}"]
        for r in results
    ]
    emit({"benchmark": "import", "seed": SEED, "rows": args.rows, "preload": args.preload,
          "dup_rate": args.dup_rate, "runs": args.runs, "results": results},
         as_json=args.json,
         title=f"import {args.rows:,} rows into {args.preload:,} (median of {args.runs})",
         headers=["engine", "import rows/s", "raw insert rows/s", "raw/import",
                  "with scoring and routing rows/s", "peak MiB",
                  "dedup precision", "dedup recall"],
         rows=table_rows)


if __name__ == "__main__":
    main()
