"""``leadflow scoring`` train / predict / evaluate on two different CSV histories, and more."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from leadflow.scoring import learning
from leadflow.scoring.history import planted_history


def leadflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leadflow", *args], capture_output=True,
                          text=True, timeout=600)


def _write(frame, path: Path, *, gb18030: bool = False) -> Path:  # type: ignore[no-untyped-def]
    frame.to_csv(path, index=False, encoding="gb18030" if gb18030 else "utf-8")
    return path


@pytest.mark.parametrize(("schema", "target", "id_column", "gb18030"), [
    ("leads", "converted", "lead_id", True),
    ("saas", "won", "account_id", False),
])
def test_train_predict_evaluate_on_any_history(
    db: Engine, tmp_path: Path, schema: str, target: str, id_column: str, gb18030: bool
) -> None:
    frame, _ = planted_history(4000, seed=3, schema=schema)
    assert target in frame.columns and id_column in frame.columns
    history = _write(frame.iloc[:3000], tmp_path / "history.csv", gb18030=gb18030)
    trained = leadflow("scoring", "train", "--history", str(history), "--target", target,
                       "--id-column", id_column, "--json")
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert set(summary["candidates"]) == {"frequency", "logistic", "gbt"}
    assert summary["holdout_roc_auc"] > 0.65
    assert id_column not in summary["features"]

    fresh = frame.iloc[3000:].drop(columns=[target])
    new = _write(fresh, tmp_path / "new.csv", gb18030=gb18030)
    out = tmp_path / "scored.csv"
    predicted = leadflow("scoring", "predict", str(new), "--out", str(out), "--json")
    assert predicted.returncode == 0, predicted.stderr
    with out.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1000 and list(rows[0]) == [id_column, "probability", "grade"]
    assert [r[id_column] for r in rows] == [str(i) for i in fresh[id_column]]
    assert all(0.0 <= float(r["probability"]) <= 1.0 for r in rows)
    # The planted truth: predicted probabilities follow the true ones.
    actual = learning.parse_target(frame.iloc[3000:][target].astype(str))
    probs = [float(r["probability"]) for r in rows]
    top = sorted(range(1000), key=lambda i: -probs[i])[:200]
    assert actual[top].mean() > 1.8 * actual.mean()

    evaluated = leadflow("scoring", "evaluate", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["data"] == "held-out split"
    assert {"roc_auc", "pr_auc", "lift", "calibration"} <= set(report)
    assert [r["grade"] for r in report["lift"]] == ["A+", "A", "B", "C", "D"]
    on_file = leadflow("scoring", "evaluate", "--history", str(_write(
        frame.iloc[3000:], tmp_path / "labelled.csv")), "--target", target, "--json")
    assert on_file.returncode == 0, on_file.stderr
    assert json.loads(on_file.stdout)["roc_auc"] > 0.65


def test_history_errors_are_one_clear_line(db: Engine, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,industry,won\n1,教育,yes\n2,金融,maybe\n", encoding="utf-8")
    out = leadflow("scoring", "train", "--history", str(bad), "--target", "won")
    assert out.returncode == 2
    assert "maybe" in out.stderr and "row 3" in " ".join(out.stderr.split())
    missing = leadflow("scoring", "train", "--history", str(bad), "--target", "nope")
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_rules_round_trip_and_rescore(db: Engine, tmp_path: Path) -> None:
    exported = tmp_path / "rules.yaml"
    assert leadflow("scoring", "rules", "export", "--out", str(exported)).returncode == 0
    text = exported.read_text(encoding="utf-8")
    assert "version 0" in text and "community_class" in text
    exported.write_text(text.replace("mql_grade: A", "mql_grade: B"), encoding="utf-8")
    imported = leadflow("scoring", "rules", "import", str(exported), "--note", "wider", "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["version"] == 1
    broken = tmp_path / "broken.yaml"
    broken.write_text("grading: {thresholds: {A+: 10, A: 20, B: 5, C: 1}}", encoding="utf-8")
    refused = leadflow("scoring", "rules", "import", str(broken))
    assert refused.returncode == 2 and "fall from A+ to C" in " ".join(refused.stderr.split())
    rescored = leadflow("scoring", "rescore", "--json")
    assert rescored.returncode == 0, rescored.stderr
    assert json.loads(rescored.stdout)["ruleset_version"] == 1
    cold = leadflow("scoring", "train")
    assert cold.returncode == 2 and "rules alone" in " ".join(cold.stderr.split())
