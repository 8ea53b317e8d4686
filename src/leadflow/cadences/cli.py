"""``leadflow cadences …``: list cadences, install the brief's presets, run due steps, and
plan a returning rep's catch-up."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from leadflow import clock, terminal
from leadflow.db import session_scope
from leadflow.errors import NotFound

cadences_app = typer.Typer(help="Cadences, nurture programs and the work queue.",
                           no_args_is_help=True)


@cadences_app.command("list")
def list_cmd(as_json: terminal.JsonOpt = False) -> None:
    """Every cadence and nurture program with its steps and enrollment conditions."""
    from leadflow.cadences import service

    with session_scope() as session:
        rows = [{"id": c.id, "name": c.name, "purpose": c.purpose, "active": c.is_active,
                 "auto_enroll": c.auto_enroll, "conditions": c.conditions,
                 "priority": c.priority,
                 "steps": len(service.steps_of(session=session, cadence_id=c.id))}
                for c in service.list_cadences(session=session)]
    if as_json:
        terminal.emit({"cadences": rows}, True, "")
        return
    table = Table("id", "name", "purpose", "steps", "auto", "conditions", "priority")
    for r in rows:
        table.add_row(str(r["id"]), str(r["name"]), str(r["purpose"]), str(r["steps"]),
                      str(r["auto_enroll"]), str(r["conditions"]), str(r["priority"]))
    terminal.console.print(table)


@cadences_app.command("install")
def install_cmd(
    preset: Annotated[str, typer.Argument(help="7in7, 9in18, 18in35, persistent6, "
                                               "nurture_warm or nurture_cold")],
    grades: Annotated[list[str] | None, typer.Option("--grade",
                                                      help="Enroll leads of this grade "
                                                           "automatically (repeat)")] = None,
    auto: Annotated[bool, typer.Option("--auto/--manual",
                                       help="Enroll newly assigned leads by itself")] = False,
    as_json: terminal.JsonOpt = False,
) -> None:
    """Create a cadence from one of the brief's presets."""
    from leadflow.cadences import service

    with session_scope() as session:
        cadence = service.install_preset(session=session, key=preset, actor_id=None,
                                         now=clock.now(), auto_enroll=auto or bool(grades),
                                         grades=grades or [])
        out = {"id": cadence.id, "name": cadence.name, "auto_enroll": cadence.auto_enroll}
    terminal.emit(out, as_json, "cadence installed")


@cadences_app.command("run")
def run_cmd(as_json: terminal.JsonOpt = False) -> None:
    """One pass of the cadence jobs now: open due tasks, run automatic steps, resume pauses."""
    from leadflow.cadences import jobs

    terminal.emit(jobs.sweep(now=clock.now()).as_dict(), as_json, "cadence pass")


@cadences_app.command("catch-up")
def catch_up_cmd(
    email: Annotated[str, typer.Argument(help="The returning rep's login email")],
    per_day: Annotated[int | None, typer.Option(help="Tasks to keep due today")] = None,
    as_json: terminal.JsonOpt = False,
) -> None:
    """Spread a returning rep's overdue tasks over the coming working days."""
    from leadflow.cadences import jobs
    from leadflow.users.models import User

    with session_scope() as session:
        user_id = session.scalar(select(User.id).where(User.email == email.strip().lower()))
        if user_id is None:
            raise NotFound(f"no user {email}")
        plan = jobs.plan_catch_up(session=session, user_id=user_id, now=clock.now(),
                                  per_day=per_day)
        out = {"today": len(plan.today),
               "later": {d.isoformat(): len(ids) for d, ids in plan.later.items()}}
    terminal.emit(out, as_json, "catch-up plan")
