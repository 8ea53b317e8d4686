"""Turning a captured record into lead fields. Pure: no session, no clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from leadflow.cleaning import normalise
from leadflow.cleaning.rules import blocking_keys

_TRUE = frozenset({"1", "true", "yes", "y", "是", "同意", "opt-in", "opt in", "on"})
_FALSE = frozenset({"0", "false", "no", "n", "否", "不同意", "opt-out", "opt out", "off"})
_PLAIN_TEXT_FIELDS = ("title", "industry", "region", "province", "city", "address",
                      "postcode", "product_interest")
MAX_LEN = {"name": 120, "title": 120, "company": 200, "industry": 80, "region": 80,
           "province": 80, "city": 80, "address": 300, "postcode": 16,
           "product_interest": 120}


@dataclass(slots=True)
class CleanRecord:
    """Lead fields from one record, or the field errors that reject it."""

    fields: dict[str, Any] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the record can be captured."""
        return not self.errors


def clean_record(record: Mapping[str, str], *, default_region: str = "CN") -> CleanRecord:
    """Normalise a record with canonical keys (see ``leads.files.LEAD_FIELDS``).

    1. Names: ``name`` or given + family name; full-width → half-width, spacing.
    2. Phone → E.164 (raw kept), email → lower-case and validated, WeChat id checked.
    3. Company name kept for display plus its matching key; places and text trimmed.
    4. Keys ``custom:<header>`` become custom fields; ``tags`` split on , ; ， 、.
    5. A record needs a name or a way to reach the person (phone, email, WeChat);
       a value that is present but invalid rejects the record with field and reason, so the
       user can fix the row and import it again (nothing is silently dropped).
    """
    out = CleanRecord()
    f = out.fields
    if "_error" in record:
        out.errors.append(("_row", record["_error"]))
        return out
    name = normalise.person_name(record.get("name")) or normalise.person_name(
        normalise.join_name(record.get("given_name"), record.get("family_name"))
    )
    f["name"] = name
    raw_phone = normalise.text(record.get("phone"))
    result = normalise.phone(raw_phone, default_region)
    if result.error:
        out.errors.append(("phone", f"{result.error}: {raw_phone!r}"))
    f["phone"], f["phone_raw"] = result.value, raw_phone
    result = normalise.email(record.get("email"))
    if result.error:
        out.errors.append(("email", f"{result.error}: {record.get('email')!r}"))
    f["email"] = result.value
    result = normalise.wechat_id(record.get("wechat_id"))
    if result.error:
        out.errors.append(("wechat_id", f"{result.error}: {record.get('wechat_id')!r}"))
    f["wechat_id"] = result.value
    company = normalise.text(record.get("company"))
    f["company"] = company
    f["company_key"] = normalise.company_key(company)
    for key in _PLAIN_TEXT_FIELDS:
        f[key] = normalise.text(record.get(key))
    result = normalise.headcount(record.get("headcount"))
    if result.error:
        out.errors.append(("headcount", result.error))
    f["headcount"] = int(result.value) if result.value else None
    language = normalise.text(record.get("language"))
    f["language"] = language.lower()[:8] if language else _guess_language(name, company)
    consent = normalise.text(record.get("consent"))
    if consent is not None:
        lowered = consent.lower()
        if lowered in _TRUE:
            f["consent"] = True
        elif lowered in _FALSE:
            f["consent"] = False
        else:
            out.errors.append(("consent", f"not a yes/no value: {consent!r}"))
    tags = normalise.text(record.get("tags"))
    f["tags"] = _split_tags(tags) if tags else []
    custom = {k[7:]: v for k, v in record.items() if k.startswith("custom:") and v}
    notes = normalise.text(record.get("notes"))
    if notes:
        custom["notes"] = notes
    f["custom_fields"] = custom
    for key, limit in MAX_LEN.items():
        value = f.get(key)
        if value is not None and len(value) > limit:
            out.errors.append((key, f"longer than {limit} characters"))
    if not (f["name"] or f["phone"] or f["email"] or f["wechat_id"]) and not out.errors:
        out.errors.append(("name", "no name, phone, email or WeChat id: nobody to contact"))
    keys = blocking_keys(name=name, company_key=f["company_key"], city=f["city"])
    f["key_name_company"] = keys.name_company
    f["key_name_place"] = keys.name_place
    return out


def _split_tags(value: str) -> list[str]:
    for sep in ("，", "、", ";", "；", "|"):
        value = value.replace(sep, ",")
    return sorted({t.strip() for t in value.split(",") if t.strip()})


def _guess_language(name: str | None, company: str | None) -> str | None:
    sample = (name or "") + (company or "")
    if not sample:
        return None
    return "zh" if any("\u3400" <= ch <= "\u9fff" for ch in sample) else "en"
