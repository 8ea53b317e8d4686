"""Enrichment: company background from a provider.

A provider answers, for a batch of (company key, email domain) pairs, the firmographic
fields it knows. The built-in provider reads the ``firmographic`` table that
``leadflow enrich load FILE`` fills; others (a vendor API) implement the same protocol.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from leadflow.cleaning import normalise
from leadflow.cleaning.models import Firmographic

ENRICHED_FIELDS: tuple[str, ...] = ("industry", "headcount", "region", "province", "city")
# Webmail domains say nothing about the employer.
FREE_MAIL_DOMAINS = frozenset(
    {"qq.com", "163.com", "126.com", "gmail.com", "outlook.com", "hotmail.com", "sina.com",
     "sohu.com", "yahoo.com", "foxmail.com", "139.com", "aliyun.com", "icloud.com",
     "yeah.net", "live.com", "msn.com", "proton.me"}
)


@dataclass(frozen=True, slots=True)
class CompanyFacts:
    """What a provider knows about a company, and how it matched."""

    company: str
    matched_on: str
    values: dict[str, Any]


class EnrichmentProvider(Protocol):
    """Looks companies up in bulk."""

    name: str

    def lookup(
        self, *, session: Session, company_keys: Iterable[str], domains: Iterable[str]
    ) -> tuple[dict[str, CompanyFacts], dict[str, CompanyFacts]]:
        """Facts by company key and by email domain."""
        ...


class FirmographicTableProvider:
    """The built-in provider over the ``firmographic`` table.

    Answers are cached for the provider's life (one import job): an event list names the
    same companies over and over, and the table changes only through ``enrich load``.
    """

    name = "firmographic_table"

    def __init__(self) -> None:
        self._by_key: dict[str, CompanyFacts | None] = {}
        self._by_domain: dict[str, CompanyFacts | None] = {}

    def lookup(
        self, *, session: Session, company_keys: Iterable[str], domains: Iterable[str]
    ) -> tuple[dict[str, CompanyFacts], dict[str, CompanyFacts]]:
        """Facts for the keys and domains given, one indexed query per kind of miss."""
        company_keys = set(company_keys)
        self._fill(session, self._by_key, Firmographic.company_key, company_keys, "company")
        wanted = {d for d in domains if d not in FREE_MAIL_DOMAINS}
        self._fill(session, self._by_domain, Firmographic.domain, wanted, "domain")
        return (
            {k: v for k in company_keys if (v := self._by_key.get(k))},
            {d: v for d in wanted if (v := self._by_domain.get(d))},
        )

    @staticmethod
    def _fill(
        session: Session, cache: dict[str, CompanyFacts | None], column: Any, wanted: set[str],
        how: str,
    ) -> None:
        missing = [k for k in wanted if k not in cache]
        fields = [getattr(Firmographic, f) for f in ENRICHED_FIELDS]
        for start in range(0, len(missing), 5000):
            chunk = missing[start:start + 5000]
            for k in chunk:
                cache[k] = None
            rows = session.execute(
                select(column, Firmographic.company, *fields)
                .where(column.in_(chunk))
                .order_by(Firmographic.id)
            )
            for key, company, *values in rows:
                if cache.get(key) is None:
                    cache[key] = CompanyFacts(company, how, dict(zip(ENRICHED_FIELDS, values,
                                                                     strict=True)))


def facts_for(
    *,
    company_key: str | None,
    domain: str | None,
    by_key: dict[str, CompanyFacts],
    by_domain: dict[str, CompanyFacts],
) -> CompanyFacts | None:
    """The company match wins over the domain match."""
    if company_key and company_key in by_key:
        return by_key[company_key]
    if domain and domain in by_domain:
        return by_domain[domain]
    return None


def load_firmographics(*, session: Session, path: Path, now: datetime) -> int:
    """Load (or refresh) the firmographic table from a CSV/XLSX/JSONL file.

    Columns are detected like lead imports (company, industry, headcount, region,
    province, city) plus ``domain`` or ``website``; a company already loaded is replaced.
    """
    from leadflow.leads import files

    lead_file = files.open_rows(path)
    rows: list[dict[str, Any]] = []
    for _number, record, _raw in lead_file.rows():
        company = normalise.text(record.get("company"))
        if not company:
            continue
        domain = record.get("custom:domain") or record.get("custom:website")
        if not domain and record.get("email"):
            domain = normalise.email_domain(record["email"].lower())
        count = normalise.headcount(record.get("headcount")).value
        rows.append({
            "company": company,
            "company_key": normalise.company_key(company),
            "domain": _domain(domain),
            "industry": normalise.text(record.get("industry")),
            "headcount": int(count) if count else None,
            "region": normalise.text(record.get("region")),
            "province": normalise.text(record.get("province")),
            "city": normalise.text(record.get("city")),
            "extra": {k[7:]: v for k, v in record.items() if k.startswith("custom:")},
            "loaded_at": now,
        })
    keys = sorted({r["company_key"] for r in rows if r["company_key"]})
    for start in range(0, len(keys), 2000):
        session.execute(
            delete(Firmographic).where(Firmographic.company_key.in_(keys[start:start + 2000]))
        )
    if rows:
        session.execute(insert(Firmographic), rows)
    session.flush()
    return len(rows)


def _domain(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().lower()
    for prefix in ("https://", "http://", "www."):
        value = value.removeprefix(prefix)
    return value.split("/", 1)[0] or None
