"""Learned conversion model: held-out quality and scoring speed.

Generates the planted "leads" history (``--rows``, seeded), trains the conversion model
(frequency, logistic and gradient-boosted candidates compared by cross-validated ROC AUC,
the best calibrated), and reports:

* held-out ROC AUC and PR AUC of all three candidates and of the chosen, calibrated model,
  the chosen model's gap to the best candidate, and the planted truth's own AUC on the
  whole history (the ceiling: no model can know more than the true probabilities);
* training seconds and peak RSS;
* ``predict_frame`` throughput on ``--score-rows`` freshly generated leads (end to end
  from the DataFrame, and from the already-encoded matrix), beside a raw baseline on the
  same encoded matrix: a numpy dot product with a random weight vector and the logistic
  link, the floor of what any scorer costs;
* ``predict_row`` and ``explain_row`` p50/p99 in µs over ``--row-samples`` leads given as
  dicts, beside a raw baseline on the same dicts: one dict lookup per field and
  ``math.exp`` of the dot product;
* correctness beside speed: the largest |predict_row − predict_frame| over those leads,
  and the grade shares of the scored leads against the configured shares.

Timings are medians of ``--runs`` runs. No database is needed.

    python benchmarks/model_bench.py --rows 50000 --json
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

sys.path.insert(0, str(Path(__file__).parent))
from common import Timer, emit, percentile
from leadflow.scoring.history import planted_history
from leadflow.scoring.learning import (
    CANDIDATES,
    DEFAULT_GRADE_SHARES,
    GRADES,
    ColumnKind,
    ConversionModel,
    FeatureSpec,
    train,
)

SEED = 20261126
SCORE_SEED = SEED + 1  # leads to score are not the leads trained on


def raw_row_scorer(spec: FeatureSpec, rng: np.random.Generator) -> Any:
    """The per-lead floor: a dict lookup per field, a dot product, ``math.exp``."""
    plan = [
        (c.name, {v: float(w) for v, w in zip(c.categories, rng.normal(size=len(c.categories)),
                                              strict=True)}
         if c.kind is ColumnKind.CATEGORICAL else None, float(rng.normal()))
        for c in spec.columns
    ]

    def score(row: dict[str, Any]) -> float:
        z = 0.0
        for name, table, weight in plan:
            value: Any = row.get(name)
            if table is not None:
                z += table.get(value, 0.0)
            elif value is not None and value == value:
                z += weight * float(value)
        return 1.0 / (1.0 + math.exp(-z))

    return score


def latencies_us(fn: Any, rows: list[dict[str, Any]]) -> list[float]:
    """Microseconds per call, after a warm-up pass; the collector stays out of the way."""
    for row in rows[:200]:
        fn(row)
    gc.collect()
    gc.disable()
    try:
        out = []
        for row in rows:
            start = time.perf_counter_ns()
            fn(row)
            out.append((time.perf_counter_ns() - start) / 1000)
        return out
    finally:
        gc.enable()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train once; time scoring ``args.runs`` times."""
    frame, truth = planted_history(args.rows, seed=SEED)
    with Timer() as training:
        result = train(frame, target=truth.target, id_column=truth.id_column, seed=SEED)
    model = ConversionModel.load(kind=result.kind, spec=result.spec.to_json(), blob=result.blob,
                                 metrics=result.metrics)
    candidates = result.metrics["candidates"]
    holdout = result.metrics["holdout"]
    best = max(candidates, key=lambda k: candidates[k]["holdout_auc"])
    from sklearn.metrics import roc_auc_score

    quality = {
        "candidates": {k: {m: round(v[m], 4) for m in ("cv_auc", "holdout_auc", "holdout_pr_auc")}
                       for k, v in candidates.items()},
        "chosen": result.kind,
        "chosen_holdout_auc": round(holdout["roc_auc"], 4),
        "chosen_holdout_pr_auc": round(holdout["pr_auc"], 4),
        "best_candidate": best,
        "gap_to_best": round(candidates[best]["holdout_auc"] - holdout["roc_auc"], 4),
        "margin_over_frequency": round(
            holdout["roc_auc"] - candidates["frequency"]["holdout_auc"], 4),
        "planted_truth_auc": round(float(roc_auc_score(frame[truth.target], truth.probability)), 4),
        "calibration": {"method": result.metrics["calibration_method"],
                        "mean_predicted": round(holdout["mean_predicted"], 4),
                        "base_rate": round(holdout["base_rate"], 4),
                        "error": round(holdout["calibration_error"], 4)},
        "lift": {row["grade"]: None if row["lift"] is None else round(row["lift"], 2)
                 for row in holdout["lift"]},
    }
    del frame

    score_frame, _ = planted_history(args.score_rows, seed=SCORE_SEED)
    rng = np.random.default_rng(SEED)
    encoded = model.spec.encode_frame(score_frame)
    dense = np.nan_to_num(encoded)
    weights = rng.normal(size=encoded.shape[1])
    rows = score_frame.head(args.row_samples).to_dict("records")
    baseline_row = raw_row_scorer(model.spec, rng)

    seconds: dict[str, list[float]] = {"frame": [], "encode": [], "matrix": [], "raw": []}
    micros: dict[str, list[tuple[float, float]]] = {"row": [], "explain": [], "raw": []}
    for _ in range(args.runs):
        with Timer() as t:
            probabilities = model.predict_frame(score_frame)
        seconds["frame"].append(t.seconds)
        with Timer() as t:
            model.spec.encode_frame(score_frame)
        seconds["encode"].append(t.seconds)
        with Timer() as t:
            model._predict_matrix(encoded)
        seconds["matrix"].append(t.seconds)
        with Timer() as t, np.errstate(over="ignore"):
            1.0 / (1.0 + np.exp(-(dense @ weights)))
        seconds["raw"].append(t.seconds)
        for name, fn in (("row", model.predict_row), ("explain", model.explain_row),
                         ("raw", baseline_row)):
            times = latencies_us(fn, rows)
            micros[name].append((percentile(times, 50), percentile(times, 99)))

    by_row = np.array([model.predict_row(row) for row in rows])
    grades = model.grades(probabilities)
    n = args.score_rows
    med = {k: statistics.median(v) for k, v in seconds.items()}

    def us(name: str) -> dict[str, float]:
        return {"p50": round(statistics.median(p for p, _ in micros[name]), 2),
                "p99": round(statistics.median(p for _, p in micros[name]), 2)}

    speed = {
        "predict_frame_rows_per_s": round(n / med["frame"]),
        "predict_frame_seconds": round(med["frame"], 3),
        "encode_seconds": round(med["encode"], 3),
        "score_encoded_rows_per_s": round(n / med["matrix"]),
        "raw_dot_rows_per_s": round(n / med["raw"]),
        "ratio_raw_over_predict_frame": round(med["frame"] / med["raw"], 1),
        "predict_row_us": us("row"),
        "explain_row_us": us("explain"),
        "raw_row_us": us("raw"),
    }
    correctness = {
        "max_row_frame_difference": float(np.abs(by_row - probabilities[: len(rows)]).max()),
        "grade_shares": {g: round(float((grades == g).mean()), 4) for g in GRADES},
        "configured_shares": DEFAULT_GRADE_SHARES,
    }
    return {
        "benchmark": "model", "seed": SEED, "rows": args.rows, "score_rows": n,
        "row_samples": args.row_samples, "runs": args.runs, "cpus": os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "sklearn": sklearn.__version__,
        "training_seconds": round(training.seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "quality": quality, "speed": speed, "correctness": correctness,
    }


def main() -> None:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--score-rows", type=int, default=1_000_000)
    parser.add_argument("--row-samples", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    q, s, c = result["quality"], result["speed"], result["correctness"]
    rows = [
        [kind, f"{q['candidates'][kind]['holdout_auc']:.4f}",
         f"cv {q['candidates'][kind]['cv_auc']:.4f}",
         f"PR {q['candidates'][kind]['holdout_pr_auc']:.4f}"]
        for kind in CANDIDATES
    ]
    rows += [
        [f"chosen: {q['chosen']}", f"{q['chosen_holdout_auc']:.4f}",
         f"gap {q['gap_to_best']:+.4f}", f"PR {q['chosen_holdout_pr_auc']:.4f}"],
        ["planted truth", f"{q['planted_truth_auc']:.4f}",
         f"vs freq {q['margin_over_frequency']:+.4f}",
         f"cal. err {q['calibration']['error']:.4f}"],
        ["train s", f"{result['training_seconds']:.1f}", f"{result['rows']:,} rows",
         f"{result['peak_rss_mib']} MiB"],
        ["frame rows/s", f"{s['predict_frame_rows_per_s']:,}",
         f"raw {s['raw_dot_rows_per_s']:,}", f"{s['ratio_raw_over_predict_frame']}x"],
        ["  encode s", f"{s['encode_seconds']:.2f}",
         f"scored {s['score_encoded_rows_per_s']:,}/s", ""],
        ["row µs p50/99", f"{s['predict_row_us']['p50']}/{s['predict_row_us']['p99']}",
         f"raw {s['raw_row_us']['p50']}/{s['raw_row_us']['p99']}",
         f"Δ {c['max_row_frame_difference']:.0e}"],
        ["explain µs", f"{s['explain_row_us']['p50']}/{s['explain_row_us']['p99']}", "", ""],
        ["grades", " ".join(f"{g} {v:.2f}" for g, v in list(c["grade_shares"].items())[:3]),
         " ".join(f"{g} {v:.2f}" for g, v in list(c["grade_shares"].items())[3:]), ""],
    ]
    emit(result, as_json=args.json,
         title=f"conversion model, {args.rows:,} planted leads (seed {SEED}, "
               f"median of {args.runs})",
         headers=["measure", "value", "beside", "note"], rows=rows)


if __name__ == "__main__":
    main()
