"""``leadflow scoring …``: train, predict, evaluate, re-score, rules in and out, reports."""

from __future__ import annotations

import csv
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from leadflow import clock, terminal
from leadflow.db import session_scope
from leadflow.users.rules import Permission

if TYPE_CHECKING:
    from leadflow.scoring import batch

# The scoring modules (scikit-learn, pandas) load inside the commands: every other
# ``leadflow`` command, and ``--help``, starts without them.

scoring_app = typer.Typer(help="Lead scoring and grading.", no_args_is_help=True)
rules_app = typer.Typer(help="The scoring rule set (YAML).", no_args_is_help=True)
scoring_app.add_typer(rules_app, name="rules")

FileArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]
UserOpt = Annotated[str | None, typer.Option(help="Acting user's email")]


def _actor_id(email: str | None) -> int | None:
    with session_scope() as session:
        user = terminal.acting_user(session, email, Permission.SCORING_MANAGE if email else None)
        return user.id if user else None


def _model_summary(row_id: int, kind: str, metrics: dict[str, Any]) -> dict[str, Any]:
    holdout = metrics.get("holdout", {})
    return {
        "model_id": row_id,
        "chosen": kind,
        "candidates": {
            name: {k: round(v, 4) if isinstance(v, float) else v for k, v in c.items()}
            for name, c in metrics.get("candidates", {}).items()
        },
        "holdout_roc_auc": holdout.get("roc_auc"),
        "holdout_pr_auc": holdout.get("pr_auc"),
        "n_rows": metrics.get("n_rows"),
        "n_positive": metrics.get("n_positive"),
        "features": metrics.get("features"),
    }


def _print_candidates(summary: dict[str, Any]) -> None:
    table = Table("candidate", "CV ROC AUC", "held-out ROC AUC", "held-out PR AUC",
                  title=f"model {summary['model_id']}: chose {summary['chosen']}")
    for name, c in summary["candidates"].items():
        table.add_row(name + (" ✓" if name == summary["chosen"] else ""),
                      f"{c.get('cv_auc', 0):.4f}", f"{c.get('holdout_auc', 0):.4f}",
                      f"{c.get('holdout_pr_auc', 0):.4f}")
    Console().print(table)


@scoring_app.command("train")
def train_cmd(
    history: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="A CSV history instead of the database")] = None,
    target: Annotated[str | None, typer.Option(help="The outcome column (with --history)")] = None,
    id_column: Annotated[str | None, typer.Option(help="The row id column")] = None,
    rescore: Annotated[bool, typer.Option(help="Re-score all leads after training")] = True,
    user: UserOpt = None,
    as_json: terminal.JsonOpt = False,
) -> None:
    """Train the conversion model: compare three learners, keep the best, store a version."""
    from leadflow.scoring import jobs, learning
    from leadflow.scoring import service as scoring_service

    actor_id = _actor_id(user)
    now = clock.now()
    started = time.perf_counter()
    with terminal.console.status("training…") as status:
        def said(message: str) -> None:
            status.update(message)

        if history is None:
            if target or id_column:
                terminal.fail("--target and --id-column go with --history")
            row = jobs.train_from_database(now=now, actor_id=actor_id, progress=said)
        else:
            if not target:
                terminal.fail("--history needs --target COLUMN")
            assert target is not None
            frame = learning.read_history(history)
            result = learning.train(frame, target=target, id_column=id_column, progress=said)
            with session_scope() as session:
                row = scoring_service.store_model(
                    session=session, result=result, source=history.name, target=target,
                    id_column=id_column, activate=False, actor_id=actor_id, now=now,
                )
                session.expunge(row)
    summary = _model_summary(row.id, row.kind, row.metrics)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    summary["active"] = history is None
    if history is None and rescore:
        summary["rescored"] = _rescore().leads
    if as_json:
        terminal.emit(summary, True, "")
        return
    _print_candidates(summary)
    terminal.console.print(
        f"held-out ROC AUC {summary['holdout_roc_auc']:.4f}, PR AUC "
        f"{summary['holdout_pr_auc']:.4f}; stored as model {row.id}"
        + (" (active: it now scores the leads)" if history is None else "")
    )


@scoring_app.command("predict")
def predict_cmd(
    file: FileArg,
    out: Annotated[Path, typer.Option("--out", help="Where to write id, probability, grade")],
    model: Annotated[int | None, typer.Option(help="Model id (default: the newest)")] = None,
    as_json: terminal.JsonOpt = False,
) -> None:
    """Write the conversion probability and grade of every row of a CSV."""
    from leadflow.scoring import learning
    from leadflow.scoring import service as scoring_service

    with session_scope() as session:
        row = scoring_service.get_model(session=session, model_id=model)
        conversion = scoring_service.load_model(row)
        id_column = row.id_column
    frame = learning.read_history(file)
    probabilities = conversion.predict_frame(frame)
    ids = (frame[id_column].tolist() if id_column and id_column in frame.columns
           else list(range(1, len(frame) + 1)))
    header = id_column if id_column and id_column in frame.columns else "row"
    grades = [conversion.grade_for(float(p)) for p in probabilities]
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([header, "probability", "grade"])
        for rid, p, g in zip(ids, probabilities.tolist(), grades, strict=True):
            writer.writerow([rid, f"{p:.6f}", g])
    counts = {g: grades.count(g) for g in learning.GRADES}
    terminal.emit({"model_id": row.id, "rows": len(frame), "out": str(out), "grades": counts},
                  as_json, "predictions")


@scoring_app.command("evaluate")
def evaluate_cmd(
    model: Annotated[int | None, typer.Option(help="Model id (default: the newest)")] = None,
    history: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="Evaluate on this CSV instead of the held-out split")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Outcome column of --history")] = None,
    as_json: terminal.JsonOpt = False,
) -> None:
    """ROC AUC, PR AUC, lift by grade and calibration on held-out data."""
    from leadflow.scoring import learning
    from leadflow.scoring import service as scoring_service

    with session_scope() as session:
        row = scoring_service.get_model(session=session, model_id=model)
        conversion = scoring_service.load_model(row)
        row_id, kind, metrics, row_target = row.id, row.kind, row.metrics, row.target
    if history is not None:
        frame = learning.read_history(history)
        evaluation = learning.evaluate(conversion, frame, target=target or row_target)
        evaluation["data"] = history.name
    else:
        evaluation = dict(metrics.get("holdout", {}))
        evaluation["data"] = "held-out split"
    result = {"model_id": row_id, "kind": kind, **evaluation,
              "candidates": metrics.get("candidates", {})}
    if as_json:
        terminal.emit(result, True, "")
        return
    console = Console()
    console.print(f"model {row_id} ({kind}) on {evaluation['data']}: ROC AUC "
                  f"{evaluation['roc_auc']:.4f}, PR AUC {evaluation['pr_auc']:.4f}, "
                  f"base rate {evaluation['base_rate']:.3f}")
    lift = Table("grade", "n", "converted", "rate", "lift", title="lift by grade")
    for r in evaluation["lift"]:
        lift.add_row(r["grade"], str(r["n"]), str(r["positives"]), f"{r['rate']:.3f}",
                     f"{r['lift']:.2f}")
    console.print(lift)
    calibration = Table("bin", "n", "mean predicted", "observed", title="calibration")
    for r in evaluation["calibration"]:
        calibration.add_row(str(r["bin"]), str(r["n"]), f"{r['mean_predicted']:.3f}",
                            f"{r['observed']:.3f}")
    console.print(calibration)


def _rescore(*, from_events: bool = False) -> batch.RescoreSummary:
    from leadflow.scoring import jobs

    now = clock.now()
    # No refresh thread: the re-score forks its read-ahead process when single-threaded.
    with terminal.progress(auto_refresh=False) as bar:
        task = bar.add_task("re-scoring leads", total=None, rate="")
        started = time.perf_counter()

        def report_progress(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f} leads/s",
                       refresh=True)

        return jobs.rescore_all(now=now, progress=report_progress, from_events=from_events)


@scoring_app.command("rescore")
def rescore_cmd(
    as_json: terminal.JsonOpt = False,
    from_events: Annotated[bool, typer.Option(
        "--from-events", help="Recompute engagement from every event, ignoring stored totals "
        "(after events were loaded straight into the database)")] = False,
) -> None:
    """Re-score every lead with the rule set and model in force."""
    summary = _rescore(from_events=from_events)
    terminal.emit({
        "leads": summary.leads, "seconds": round(summary.seconds, 2),
        "leads_per_second": round(summary.leads_per_second),
        "grade_changes": summary.grade_changes, "new_mqls": summary.new_mqls,
        "ruleset_version": summary.ruleset_version, "model_id": summary.model_id,
        "by_grade": summary.by_grade,
    }, as_json, "re-score")


@scoring_app.command("models")
def models_cmd(as_json: terminal.JsonOpt = False) -> None:
    """Trained model versions with their metrics."""
    from leadflow.scoring import service as scoring_service

    with session_scope() as session:
        rows = [
            {"id": m.id, "kind": m.kind, "source": m.source, "active": m.is_active,
             "rows": m.n_rows, "converted": m.n_positive,
             "roc_auc": m.metrics.get("holdout", {}).get("roc_auc"),
             "created_at": m.created_at.isoformat(timespec="seconds")}
            for m in scoring_service.model_versions(session=session)
        ]
    if as_json:
        terminal.emit({"models": rows}, True, "")
        return
    table = Table(*(rows[0].keys() if rows else ["models"]))
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    Console().print(table)


@scoring_app.command("activate")
def activate_cmd(
    model_id: Annotated[str, typer.Argument(help="Model id, or 'none' for rules alone")],
    user: UserOpt = None,
) -> None:
    """Choose the model that scores the leads (then run ``leadflow scoring rescore``)."""
    from leadflow.scoring import service as scoring_service

    actor_id = _actor_id(user)
    chosen = None if model_id.lower() == "none" else int(model_id)
    with session_scope() as session:
        scoring_service.activate_model(session=session, model_id=chosen, actor_id=actor_id,
                                       now=clock.now())
    terminal.console.print(f"model in force: {chosen or 'none (rules alone)'}")


@rules_app.command("export")
def rules_export(
    out: Annotated[Path | None, typer.Option("--out", help="File (default: stdout)")] = None,
) -> None:
    """Print or write the rule set in force as YAML."""
    from leadflow.scoring import service as scoring_service

    with session_scope() as session:
        ruleset = scoring_service.current_ruleset(session=session)
    text = f"# leadflow scoring rule set, version {ruleset.version}\n" + \
        scoring_service.ruleset_yaml(ruleset.document)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text, encoding="utf-8")


@rules_app.command("import")
def rules_import(
    file: FileArg,
    note: Annotated[str, typer.Option(help="Why the rules change")] = "",
    user: UserOpt = None,
    as_json: terminal.JsonOpt = False,
) -> None:
    """Save a YAML rule set as the next version (re-score to apply it to stored leads)."""
    from leadflow.scoring import service as scoring_service

    document = scoring_service.parse_ruleset_yaml(file.read_text(encoding="utf-8"))
    actor_id = _actor_id(user)
    with session_scope() as session:
        row = scoring_service.save_ruleset(session=session, document=document,
                                           note=note or f"imported {file.name}",
                                           actor_id=actor_id, now=clock.now())
        version = row.version
    terminal.emit({"version": version, "fit_rules": len(document.fit.rules),
                   "overrides": len(document.grading.overrides)}, as_json, "rule set saved")


@scoring_app.command("report")
def report_cmd(
    month: Annotated[str, typer.Option(help="YYYY-MM (default: this month)")] = "",
    as_json: terminal.JsonOpt = False,
) -> None:
    """The monthly calibration report: MQL → SQL and conversion by grade, flagged grades."""
    from leadflow.scoring import report

    try:
        first = date.fromisoformat((month or clock.now().strftime("%Y-%m")) + "-01")
    except ValueError:
        terminal.fail("--month must look like 2026-10")
        return
    with session_scope() as session:
        rep = report.calibration_report(session=session, month=first)
    rows: list[dict[str, Any]] = [
        {"grade": r.grade, "leads": r.leads, "mqls": r.mqls, "sqls": r.sqls,
         "converted": r.converted, "mql_to_sql": r.mql_to_sql, "conversion": r.conversion}
        for r in rep.rows
    ]
    data = {"month": rep.month.isoformat()[:7], "grades": rows,
            "lift_a_over_c": rep.lift("A"), "flags": len(rep.flags)}
    if as_json:
        terminal.emit(data, True, "")
        return
    table = Table("grade", "leads", "MQL", "SQL", "converted", "MQL→SQL", "conversion",
                  title=f"calibration {data['month']}")
    for r in rows:
        table.add_row(r["grade"], str(r["leads"]), str(r["mqls"]), str(r["sqls"]),
                      str(r["converted"]), _pct(r["mql_to_sql"]), _pct(r["conversion"]))
    Console().print(table)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"
