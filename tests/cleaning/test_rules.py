"""Dedup decisions and survivorship: pure, no database."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from leadflow.cleaning import normalise
from leadflow.cleaning.rules import (
    MatchRecord,
    MatchThresholds,
    best_match,
    blocking_keys,
    compare,
    survivorship,
)

T = MatchThresholds()


def rec(id: int | None, **fields: Any) -> MatchRecord:
    if "company" in fields:
        fields["company_key"] = normalise.company_key(fields.pop("company"))
    return MatchRecord.from_fields(id, fields)


def test_same_phone_matches_with_reason() -> None:
    result = compare(rec(None, name="张伟", phone="+8613800138000"),
                     rec(7, name="张伟", phone="+8613800138000"), T)
    assert result is not None
    assert result.keys == ("phone",) and result.similarity == 1.0
    assert "phone" in result.explain()


def test_shared_phone_with_clearly_different_name_does_not_merge() -> None:
    assert compare(rec(None, name="Mary Johnson", phone="+8613800138000"),
                   rec(7, name="张伟", phone="+8613800138000"), T) is None


def test_name_typo_at_same_company_matches() -> None:
    result = compare(rec(None, name="Jonathon Smith", company="Acme Analytics Ltd"),
                     rec(3, name="Jonathan Smith", company="ACME Analytics Limited"), T)
    assert result is not None and result.keys == ("name", "company")
    assert T.merge <= result.similarity < 1.0


def test_swapped_name_order_matches() -> None:
    result = compare(rec(None, name="Smith, John", company="Acme Inc"),
                     rec(3, name="John Smith", company="Acme"), T)
    assert result is not None


def test_same_name_and_address_without_company_matches() -> None:
    result = compare(rec(None, name="王芳", city="北京", address="北京市朝阳区建国路 88 号"),
                     rec(4, name="王芳", city="北京市", address="北京市朝阳区建国路88号"), T)
    assert result is not None and "address" in result.keys


def test_same_name_at_different_companies_is_two_people() -> None:
    assert compare(rec(None, name="张伟", company="星辰数据科技有限公司"),
                   rec(5, name="张伟", company="云帆网络技术有限公司"), T) is None


def test_same_name_same_company_but_different_phones_is_two_people() -> None:
    assert compare(
        rec(None, name="张伟", company="星辰数据", phone="+8613800000001"),
        rec(5, name="张伟", company="星辰数据", phone="+8613900000002"), T) is None


def test_threshold_is_configurable() -> None:
    a = rec(None, name="Jonathon Smith", company="Acme Analytics")
    b = rec(3, name="Jonathan Smith", company="Acme Analytics")
    assert compare(a, b, MatchThresholds(merge=0.9)) is not None
    assert compare(a, b, MatchThresholds(merge=0.999)) is None


def test_best_match_prefers_strongest_then_earliest() -> None:
    incoming = rec(None, name="John Smith", email="js@acme.com", company="Acme")
    fuzzy = rec(2, name="Jon Smith", company="Acme")
    exact_late = rec(9, name="John Smith", email="js@acme.com")
    exact_early = rec(4, name="John Smith", email="js@acme.com")
    result = best_match(incoming, [fuzzy, exact_late, exact_early], T)
    assert result is not None and result.lead_id == 4


def test_blocking_keys_put_variants_in_one_block() -> None:
    a = blocking_keys(name="张伟", company_key=normalise.company_key("北京星辰数据科技有限公司"),
                      city="北京市")
    b = blocking_keys(name="张玮", company_key=normalise.company_key("星辰数据科技"), city="北京")
    assert a.name_company == b.name_company
    assert a.name_place == b.name_place
    assert blocking_keys(name=None, company_key="x", city=None).name_company is None


def test_survivorship_fills_gaps_and_keeps_conflicts() -> None:
    outcome = survivorship(
        {"name": "张伟", "phone": "+8613800138000", "email": None, "city": "北京"},
        {"name": "张玮", "phone": None, "email": "zw@qq.com", "city": "北京"},
    )
    assert outcome.filled == {"email": "zw@qq.com"}
    assert outcome.conflicts == {"name": ("张伟", "张玮")}


@given(
    st.dictionaries(st.sampled_from(["name", "email", "city", "title"]),
                    st.one_of(st.none(), st.text(max_size=5))),
    st.dictionaries(st.sampled_from(["name", "email", "city", "title"]),
                    st.one_of(st.none(), st.text(max_size=5))),
)
def test_survivorship_never_overwrites_a_survivor_value(a: dict, b: dict) -> None:  # type: ignore[type-arg]
    outcome = survivorship(a, b)
    for name in outcome.filled:
        assert a.get(name) in (None, "")
    merged = {**a, **outcome.filled}
    for name, value in a.items():
        if value not in (None, ""):
            assert merged[name] == value


def test_a_form_of_address_does_not_block_a_phone_match() -> None:
    result = compare(rec(None, name="刘先生", phone="+8613177398719"),
                     rec(3, name="刘波颖", phone="+8613177398719"), T)
    assert result is not None and result.keys == ("phone",)
    assert compare(rec(None, name="Mr. Smith", email="js@acme.com"),
                   rec(3, name="John Smith", email="js@acme.com"), T) is not None
    assert compare(rec(None, name="王先生", phone="+8613177398719"),
                   rec(3, name="刘波颖", phone="+8613177398719"), T) is None


def test_a_form_of_address_alone_never_makes_a_fuzzy_match() -> None:
    assert compare(rec(None, name="张先生", company="星辰数据"),
                   rec(3, name="张伟", company="星辰数据"), T) is None


def test_a_full_name_replaces_a_form_of_address() -> None:
    outcome = survivorship({"name": "崔女士"}, {"name": "崔月"})
    assert outcome.filled == {"name": "崔月"}
    assert survivorship({"name": "崔月"}, {"name": "崔女士"}).filled == {}


def test_chinese_names_with_the_same_syllables_in_other_order_are_two_people() -> None:
    assert compare(rec(None, name="李扬", company="同迅金融"),
                   rec(3, name="杨力", company="同迅金融"), T) is None
    assert compare(rec(None, name="周经懿", company="星辰数据科技"),
                   rec(3, name="赵璟娅", company="星辰数据科技"), T) is None


def test_a_typo_that_changes_sorted_order_still_matches() -> None:
    assert compare(rec(None, name="Msson Medina", company="Acme Analytics"),
                   rec(3, name="Mason Medina", company="Acme Analytics"), T) is not None


def test_a_chinese_name_written_the_western_way_matches_on_its_email() -> None:
    assert compare(rec(None, name="Wei Zhang", email="zw@acme.cn"),
                   rec(3, name="张伟", email="zw@acme.cn"), T) is not None
