"""The benchmarks run on tiny data (they are not timed here: tests assert behaviour only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_bench(work: Path, script: str, *args: str) -> Any:
    """Run a benchmark with ``--json`` (scratch files under ``work``) and parse its output."""
    env = {**os.environ, "LEADFLOW_BENCH_DIR": str(work)}
    out = subprocess.run([sys.executable, str(BENCHMARKS / script), *args, "--json"],
                         env=env, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_email_bench_runs_and_loses_nothing_after_a_kill(tmp_path: Path) -> None:
    """Two workers, one killed with SIGKILL mid-run, 300 steps on SQLite: every step has
    exactly one outbox row, every message is sent and reaches the SMTP server."""
    result = run_bench(tmp_path, "email_bench.py", "--engines", "sqlite", "--steps", "300",
                       "--batch", "50", "--lease", "1")
    sqlite = result["sqlite"]
    checks = sqlite["runs"][0]["checks"]
    assert checks["messages"] == 300
    assert checks["steps_with_2plus_messages"] == 0 and checks["keys_with_2plus_rows"] == 0
    assert checks["steps_without_message"] == 0
    assert checks["tasks_not_done"] == 0 and checks["messages_not_sent"] == 0
    assert checks["next_steps_scheduled"] == 300
    assert checks["smtp_distinct_message_ids"] == 300
    assert checks["smtp_missing"] == 0 and checks["smtp_unexpected"] == 0
    assert sqlite["raw_runs"][0]["smtp_distinct_message_ids"] == 300
    assert sqlite["emails_per_s"] > 0 and sqlite["raw_emails_per_s"] > 0


def test_rescore_bench_runs_on_small_data(tmp_path: Path) -> None:
    """Every lead is scored, re-scored after rule changes and after an engagement points
    change (events read again), with a raw baseline beside it."""
    result = run_bench(tmp_path, "rescore_bench.py", "--engines", "sqlite", "--leads", "3000",
                       "--runs", "2", "--train-sample", "2500")
    sqlite = result["engines"]["sqlite"]
    assert sum(sqlite["by_grade"].values()) == 3000
    assert len(sqlite["rescore_seconds"]) == 2 and len(sqlite["raw_update_seconds"]) == 2
    assert sqlite["rescore_leads_per_s"] > 0 and sqlite["raw_rows_per_s"] > 0
    assert len(sqlite["score_row_floor_seconds"]) == 2 and sqlite["score_row_floor_ratio"] > 0
    # Each rule change moves scores across grade lines, and the counts say by how much.
    assert len(sqlite["rescore_grade_changes"]) == 2 and sqlite["rescore_grade_changes"][0] > 0
    assert all(0 <= n <= 3000 for n in sqlite["rescore_new_mqls"])
    # One more rule change, written with reading and scoring untimed.
    assert sqlite["writes_alone_seconds"] > 0 and sqlite["writes_alone_ratio"] > 0
    assert sqlite["writes_alone_grade_changes"] > 0
    assert sqlite["engagement_change_leads_per_s"] > 0
