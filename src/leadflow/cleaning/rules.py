"""Dedup and merge decisions. Pure: no session, no clock.

A record matches a stored lead through an exact key (phone, email, WeChat id) or through a
fuzzy comparison of candidates that share a blocking key (see ``blocking_keys``). Every
decision carries its reasons so the timeline can explain the merge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz

from leadflow.cleaning import normalise

# Fields a merge fills on the surviving lead when it has none (survivorship: earliest wins,
# gaps are filled, conflicts are kept in history).
FILLABLE_FIELDS: tuple[str, ...] = (
    "name", "phone", "phone_raw", "email", "wechat_id", "title", "company", "company_key",
    "industry", "headcount", "region", "province", "city", "address", "postcode",
    "product_interest", "language",
)
# Fields whose differing values are worth showing as conflicts (not the derived keys).
CONFLICT_FIELDS: tuple[str, ...] = (
    "name", "phone", "email", "wechat_id", "title", "company", "industry", "headcount",
    "province", "city", "address",
)


@dataclass(frozen=True, slots=True)
class MatchThresholds:
    """Tunable dedup thresholds (``LEADFLOW_MATCH_THRESHOLD`` sets ``merge``)."""

    merge: float = 0.88
    min_name: float = 0.80
    min_company: float = 0.80
    min_address: float = 0.80
    # Contact details that both sides have but that differ count against a fuzzy match.
    phone_conflict_penalty: float = 0.15
    email_conflict_penalty: float = 0.10
    # An exact key does not merge two records whose names clearly belong to two people.
    exact_min_name: float = 0.50


@dataclass(slots=True)
class MatchRecord:
    """What dedup compares: normalised values plus derived keys."""

    id: int | None
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    wechat_id: str | None = None
    company_key: str | None = None
    city: str | None = None
    address: str | None = None
    tokens: tuple[str, ...] = ()
    han: bool = False
    honorific: str | None = None
    address_key: str | None = None

    @classmethod
    def from_fields(cls, id: int | None, fields: Mapping[str, Any]) -> MatchRecord:
        """Build from lead-shaped fields (normalised values)."""
        name = fields.get("name")
        address = fields.get("address")
        return cls(
            id=id,
            name=name,
            phone=fields.get("phone"),
            email=fields.get("email"),
            wechat_id=fields.get("wechat_id"),
            company_key=fields.get("company_key"),
            city=normalise.place_key(fields.get("city")),
            address=address,
            tokens=normalise.name_tokens(name),
            han=normalise.is_han_name(name),
            honorific=normalise.honorific_surname(name),
            address_key=normalise.address_key(address),
        )


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Why a record is the same person as a stored lead."""

    lead_id: int
    keys: tuple[str, ...]
    similarity: float

    def explain(self) -> str:
        """One line for the timeline."""
        return f"matched on {', '.join(self.keys)} (similarity {self.similarity:.2f})"


@dataclass(frozen=True, slots=True)
class BlockingKeys:
    """Indexed keys under which fuzzy candidates are found."""

    name_company: str | None
    name_place: str | None


def blocking_keys(
    *, name: str | None, company_key: str | None, city: str | None
) -> BlockingKeys:
    """Blocking keys of a record.

    1. name initials + company key: finds typos and swapped name order at one company.
    2. phonetic name key + city: finds the same person at a missing or re-spelled company.
    """
    initials = normalise.name_initials(name)
    nkey = normalise.name_key(name)
    place = normalise.place_key(city)
    return BlockingKeys(
        name_company=f"{initials}|{company_key}"[:240] if initials and company_key else None,
        name_place=f"{nkey}|{place}"[:240] if nkey and place else None,
    )


def _ratio(a: str | None, b: str | None, scorer: Any = fuzz.ratio) -> float | None:
    if not a or not b:
        return None
    return float(scorer(a, b)) / 100.0


def _differs(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and a != b


def name_similarity(a: MatchRecord, b: MatchRecord) -> float | None:
    """How alike two names are (0–1), ``None`` when either is missing or only a form of
    address.

    Chinese names are compared in written order and must share the surname (sorting
    syllables would make 李扬 and 杨力 one person); other names in both orders, which
    covers "Smith, John" and a Chinese name written the Western way, without letting a
    typo that reorders sorted tokens ("Msson" < "Medina") break the comparison.
    """
    if not a.tokens or not b.tokens or a.honorific or b.honorific:
        return None
    written_a, written_b = " ".join(a.tokens), " ".join(b.tokens)
    if a.han and b.han:
        if a.tokens[0] != b.tokens[0]:
            return 0.0
        return float(fuzz.ratio(written_a, written_b)) / 100.0
    reversed_b = " ".join(reversed(b.tokens))
    return max(float(fuzz.ratio(written_a, written_b)),
               float(fuzz.ratio(written_a, reversed_b))) / 100.0


def names_compatible(a: MatchRecord, b: MatchRecord, minimum: float) -> bool:
    """Whether two records sharing a phone or email may be one person by their names."""
    if a.honorific or b.honorific:
        surname_a = a.honorific or (a.tokens[0] if a.han and a.tokens else None)
        surname_b = b.honorific or (b.tokens[0] if b.han and b.tokens else None)
        # "李先生" fits any 李; against a Latin name the surname may be first or last.
        if surname_a and surname_b:
            return surname_a == surname_b
        other = b if a.honorific else a
        return (a.honorific or b.honorific) in other.tokens or not other.tokens
    similarity = name_similarity(a, b)
    return similarity is None or similarity >= minimum


def compare(
    incoming: MatchRecord, stored: MatchRecord, thresholds: MatchThresholds
) -> MatchResult | None:
    """Decide whether ``incoming`` is the person of ``stored``; ``None`` when not.

    1. Exact keys (phone, email, WeChat id) match unless the names clearly differ
       ("李先生" is compatible with any 李).
    2. Otherwise name similarity (see :func:`name_similarity`) is required, plus either the
       company or the address agreeing; the score is a weighted mean, lowered when both
       sides carry different phones or emails, and must reach ``thresholds.merge``.
    """
    assert stored.id is not None
    exact = tuple(
        key
        for key, a, b in (
            ("phone", incoming.phone, stored.phone),
            ("email", incoming.email, stored.email),
            ("wechat_id", incoming.wechat_id, stored.wechat_id),
        )
        if a and a == b
    )
    if exact:
        if not names_compatible(incoming, stored, thresholds.exact_min_name):
            return None
        return MatchResult(stored.id, exact, 1.0)
    name_sim = name_similarity(incoming, stored)
    if name_sim is None or name_sim < thresholds.min_name:
        return None
    company_sim = _ratio(incoming.company_key, stored.company_key)
    address_sim = _ratio(incoming.address_key, stored.address_key, fuzz.token_set_ratio)
    same_city = bool(incoming.city) and incoming.city == stored.city
    keys: list[str] = ["name"]
    if company_sim is not None and company_sim >= thresholds.min_company:
        keys.append("company")
        score = 0.55 * name_sim + 0.45 * company_sim
        if address_sim is not None and address_sim >= thresholds.min_address:
            keys.append("address")
            score = min(1.0, score + 0.05)
    elif (
        address_sim is not None
        and address_sim >= thresholds.min_address
        and (same_city or not incoming.city or not stored.city)
        and company_sim is None
    ):
        keys.append("address")
        score = 0.55 * name_sim + 0.45 * address_sim
    else:
        return None
    if _differs(incoming.phone, stored.phone):
        score -= thresholds.phone_conflict_penalty
    if _differs(incoming.email, stored.email):
        score -= thresholds.email_conflict_penalty
    if score < thresholds.merge:
        return None
    return MatchResult(stored.id, tuple(keys), round(score, 4))


def best_match(
    incoming: MatchRecord, candidates: list[MatchRecord], thresholds: MatchThresholds
) -> MatchResult | None:
    """The strongest match among candidates; ties go to the earliest lead (lowest id)."""
    best: MatchResult | None = None
    for candidate in candidates:
        result = compare(incoming, candidate, thresholds)
        if result is None:
            continue
        if (
            best is None
            or (len(result.keys) > 0 and result.similarity > best.similarity)
            or (result.similarity == best.similarity and result.lead_id < best.lead_id)
        ):
            best = result
    return best


@dataclass(slots=True)
class MergeOutcome:
    """What survivorship changes on the surviving lead."""

    filled: dict[str, Any] = field(default_factory=dict)
    conflicts: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def survivorship(survivor: Mapping[str, Any], incoming: Mapping[str, Any]) -> MergeOutcome:
    """Survivorship: keep the survivor's values, fill its gaps, report conflicting values."""
    outcome = MergeOutcome()
    for name in FILLABLE_FIELDS:
        new = incoming.get(name)
        if new in (None, ""):
            continue
        old = survivor.get(name)
        if name == "name" and _upgrades_name(old, new):
            outcome.filled[name] = new
            outcome.conflicts[name] = (old, new)
        elif old in (None, ""):
            outcome.filled[name] = new
        elif old != new and name in CONFLICT_FIELDS:
            outcome.conflicts[name] = (old, new)
    return outcome


def _upgrades_name(old: Any, new: Any) -> bool:
    """A full name replaces a form of address ("李先生" → "李明")."""
    return (
        bool(old)
        and normalise.honorific_surname(old) is not None
        and normalise.honorific_surname(new) is None
    )
