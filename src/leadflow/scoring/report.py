"""The monthly calibration report: do grades predict what sales later sees?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from leadflow.leads.models import Lead, LeadStatus
from leadflow.scoring.models import GradeFlag, LeadScore
from leadflow.scoring.schemas import GRADES

# Accepted by sales: a rep qualified the lead, or it already became a customer.
SQL_STATUSES = (LeadStatus.QUALIFIED.value, LeadStatus.CONVERTED.value)


@dataclass(frozen=True, slots=True)
class GradeRow:
    """One grade's cohort in the month."""

    grade: str
    leads: int
    mqls: int
    sqls: int
    converted: int
    sqls_of_mqls: int = 0

    @property
    def mql_to_sql(self) -> float | None:
        """Share of this grade's MQLs that sales accepted."""
        return self.sqls_of_mqls / self.mqls if self.mqls else None

    @property
    def conversion(self) -> float | None:
        """Share of the cohort that became customers."""
        return self.converted / self.leads if self.leads else None


@dataclass(frozen=True, slots=True)
class FlagRow:
    """A grade a user reported as wrong."""

    lead_id: int
    lead_name: str | None
    grade: str
    suggested_grade: str | None
    reason: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CalibrationReport:
    """Conversion by grade for leads that arrived in ``month``, and the flagged grades."""

    month: date
    rows: list[GradeRow]
    flags: list[FlagRow]

    def lift(self, grade: str, baseline: str = "C") -> float | None:
        """How many times better ``grade`` converts than ``baseline``."""
        by = {r.grade: r.conversion for r in self.rows}
        top, base = by.get(grade), by.get(baseline)
        return top / base if top is not None and base else None


def _month_bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def calibration_report(*, session: Session, month: date) -> CalibrationReport:
    """Leads that arrived in ``month`` by the grade they were first given.

    The first grade is the one marketing handed over, so later engagement cannot flatter it.
    MQL → SQL is the share of MQLs that sales accepted (qualified or converted).
    """
    start, end = _month_bounds(month)
    is_sql = Lead.status.in_(SQL_STATUSES)
    was_mql = LeadScore.mql_at.is_not(None)
    rows = session.execute(
        select(
            LeadScore.first_grade,
            func.count(),
            func.sum(case((was_mql, 1), else_=0)),
            func.sum(case((is_sql, 1), else_=0)),
            func.sum(case((Lead.status == LeadStatus.CONVERTED.value, 1), else_=0)),
            func.sum(case((was_mql & is_sql, 1), else_=0)),
        )
        .join(LeadScore, LeadScore.lead_id == Lead.id)
        .where(Lead.created_at >= start, Lead.created_at < end,
               Lead.status != LeadStatus.MERGED.value)
        .group_by(LeadScore.first_grade)
    ).all()
    by_grade = {g: GradeRow(g, int(n), int(m or 0), int(s or 0), int(c or 0), int(ms or 0))
                for g, n, m, s, c, ms in rows}
    flags = [
        FlagRow(f.lead_id, name, f.grade, f.suggested_grade, f.reason, f.created_at)
        for f, name in session.execute(
            select(GradeFlag, Lead.name).join(Lead, Lead.id == GradeFlag.lead_id)
            .where(GradeFlag.created_at >= start, GradeFlag.created_at < end)
            .order_by(GradeFlag.created_at.desc()).limit(200)
        )
    ]
    return CalibrationReport(
        month=date(month.year, month.month, 1),
        rows=[by_grade.get(g, GradeRow(g, 0, 0, 0, 0)) for g in GRADES],
        flags=flags,
    )
