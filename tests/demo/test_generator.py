"""The demo lead generator: determinism, planted duplicates and their ground truth, files."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Literal

import pytest

from leadflow.cleaning import normalise
from leadflow.demo.generator import (
    DUPLICATE_KINDS,
    FILE_HEADERS,
    ORIGINAL,
    CompanyPool,
    GeneratedLead,
    bad_rows,
    generate_leads,
    write_firmographics,
    write_lead_file,
)
from leadflow.leads.files import open_rows
from leadflow.leads.rules import clean_record

_CJK = re.compile(r"[\u3400-\u9fff]")


@pytest.fixture(scope="module")
def leads() -> list[GeneratedLead]:
    return list(generate_leads(20_000, seed=42))


def test_same_seed_gives_the_same_leads() -> None:
    def run(seed: int) -> list[tuple[int, dict[str, str], str, int]]:
        return [(g.person_id, g.record, g.kind, g.received_at_offset_s)
                for g in generate_leads(3000, seed=seed)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_duplicate_share_follows_dup_rate(leads: list[GeneratedLead]) -> None:
    share = sum(g.kind != ORIGINAL for g in leads) / len(leads)
    assert 0.09 <= share <= 0.11
    heavy = list(generate_leads(10_000, seed=3, dup_rate=0.3))
    assert 0.29 <= sum(g.kind != ORIGINAL for g in heavy) / len(heavy) <= 0.31
    assert all(g.kind == ORIGINAL for g in generate_leads(2000, seed=3, dup_rate=0.0))


def test_every_variant_kind_is_planted_in_about_its_share(leads: list[GeneratedLead]) -> None:
    kinds = Counter(g.kind for g in leads if g.kind != ORIGINAL)
    assert set(kinds) == set(DUPLICATE_KINDS)
    total = sum(kinds.values())
    for kind, share in DUPLICATE_KINDS.items():
        assert abs(kinds[kind] / total - share) < 0.05, (kind, kinds)


def test_duplicates_point_at_an_earlier_person(leads: list[GeneratedLead]) -> None:
    seen: set[int] = set()
    for g in leads:
        if g.kind == ORIGINAL:
            assert g.person_id not in seen  # one original per person
            seen.add(g.person_id)
        else:
            assert g.person_id in seen
    assert len({g.external_id for g in leads}) == len(leads)


def test_phones_and_emails_belong_to_one_person_each(leads: list[GeneratedLead]) -> None:
    owner: dict[tuple[str, str], int] = {}
    for g in leads:
        for key, value in (("phone", normalise.phone(g.record.get("phone")).value),
                           ("email", normalise.email(g.record.get("email")).value)):
            if value:
                assert owner.setdefault((key, value), g.person_id) == g.person_id, value


def test_a_duplicate_carries_the_evidence_of_its_kind(leads: list[GeneratedLead]) -> None:
    first = {g.person_id: g.record for g in leads if g.kind == ORIGINAL}
    for g in leads:
        rec, orig = g.record, first.get(g.person_id)
        if g.kind == "phone_format":
            assert orig is not None and rec["phone"] != orig["phone"]
            assert normalise.phone(rec["phone"]).value == normalise.phone(orig["phone"]).value
            assert "email" not in rec
        elif g.kind == "email_case":
            assert orig is not None and rec["email"] != orig["email"]
            assert rec["email"].replace(" ", "").lower() == orig["email"]
            assert "phone" not in rec
        elif g.kind in ("name_typo", "name_order"):
            assert "phone" not in rec and "email" not in rec and rec["company"]
        elif g.kind == "address_variant":
            assert orig is not None and "company" not in rec
            assert rec["address"] != orig["address"]
        elif g.kind == "full_width":
            assert any(ord(ch) > 0xFF00 for ch in rec.get("phone", "") + rec.get("email", ""))


def test_generated_records_are_all_valid(leads: list[GeneratedLead]) -> None:
    rejected = [(g.record, clean_record(g.record).errors) for g in leads[:8000]
                if not clean_record(g.record).ok]
    assert rejected == []


def test_chinese_share_follows_lang_mix() -> None:
    for mix in (0.75, 0.3):
        originals = [g for g in generate_leads(8000, seed=5, lang_mix=mix) if g.kind == ORIGINAL]
        named = [g.record.get("name") or g.record.get("family_name") for g in originals]
        chinese = sum(bool(_CJK.search(n)) for n in named if n) / sum(1 for n in named if n)
        assert abs(chinese - mix) < 0.03


def test_records_are_partly_filled_and_spread_over_history(leads: list[GeneratedLead]) -> None:
    sizes = Counter(len(g.record) for g in leads)
    assert len(sizes) > 8  # not every record has every field
    offsets = [g.received_at_offset_s for g in leads]
    assert offsets[0] > 170 * 86_400 and offsets[-1] < 86_400
    assert offsets == sorted(offsets, reverse=True)


def test_batches_with_disjoint_person_ids_are_distinct_people() -> None:
    pool = CompanyPool.generate(500, seed=1)
    a = list(generate_leads(3000, seed=1, companies=pool))
    start = max(g.person_id for g in a) + 1
    b = list(generate_leads(3000, seed=2, companies=pool, start_person_id=start))
    assert min(g.person_id for g in b) == start
    for key in ("phone", "email"):
        assert not _contacts(a, key) & _contacts(b, key)
    assert not {g.external_id for g in a} & {g.external_id for g in b}


def _contacts(batch: list[GeneratedLead], key: str) -> set[str]:
    clean = normalise.phone if key == "phone" else normalise.email
    return {v for g in batch if (v := clean(g.record.get(key)).value)}


def test_bad_rows_are_rejected_on_the_stated_field() -> None:
    rows = bad_rows(1)
    assert rows and rows == bad_rows(1)
    for g in rows:
        result = clean_record(g.record)
        assert not result.ok
        assert result.errors[0][0] == g.reject_field


@pytest.mark.parametrize("headers", ["en", "zh"])
@pytest.mark.parametrize("fmt", ["csv", "xlsx", "jsonl"])
def test_lead_files_read_back_with_every_row_and_field(
    tmp_path: Path, fmt: Literal["csv", "xlsx", "jsonl"], headers: Literal["en", "zh"]
) -> None:
    sample = list(generate_leads(300, seed=9)) + bad_rows(9)
    path = tmp_path / f"leads.{fmt}"
    assert write_lead_file(path, sample, fmt=fmt, headers=headers) == len(sample)
    with open_rows(path) as lead_file:
        rows = list(lead_file.rows())
        mapping = lead_file.mapping
    assert len(rows) == len(sample)
    for header in FILE_HEADERS[headers].values():
        if header in mapping:
            assert not mapping[header].startswith("custom:"), header
    for (_, record, _), g in zip(rows, sample, strict=True):
        expected = {k: v.strip() for k, v in g.record.items() if v.strip()}
        assert record == expected


def test_lead_file_without_id_column(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    write_lead_file(path, generate_leads(50, seed=1), id_column=False)
    with open_rows(path) as lead_file:
        assert all("external_id" not in record for _, record, _ in lead_file.rows())


def test_firmographics_file_has_one_row_per_company(tmp_path: Path) -> None:
    pool = CompanyPool.generate(300, seed=4)
    assert len({c.name for c in pool}) == len(pool)
    assert len({normalise.company_key(c.name) for c in pool}) == len(pool)
    path = tmp_path / "firms.csv"
    assert write_firmographics(path, pool) == len(pool)
    with open_rows(path) as lead_file:
        rows = list(lead_file.rows())
    assert len(rows) == len(pool)
    assert rows[0][1]["company"] == pool.companies[0].name
    assert rows[0][1]["custom:domain"] == pool.companies[0].domain
