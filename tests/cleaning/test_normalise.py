"""Normalisers: examples from real lists, and properties with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow.cleaning import normalise


@pytest.mark.parametrize(
    "raw",
    ["13800138000", "138 0013 8000", "138-0013-8000", "+86 138 0013 8000", "8613800138000",
     "0086-13800138000", "１３８００１３８０００", "(+86) 138.0013.8000"],
)
def test_mainland_mobiles_in_any_format_become_one_e164(raw: str) -> None:
    assert normalise.phone(raw).value == "+8613800138000"


def test_landline_and_foreign_numbers_use_phonenumbers() -> None:
    assert normalise.phone("010-62345678").value == "+861062345678"
    assert normalise.phone("+1 415-555-2671").value == "+14155552671"
    assert normalise.phone("+44 20 7946 0958").value == "+442079460958"


@pytest.mark.parametrize("raw", ["12345", "not a phone", "138001380", "+86 999"])
def test_invalid_phones_are_reported_not_guessed(raw: str) -> None:
    result = normalise.phone(raw)
    assert result.value is None
    assert result.error


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_every_mainland_mobile_round_trips(digits: str) -> None:
    formatted = f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}"
    assert normalise.phone(formatted).value == "+86" + digits
    assert normalise.phone(digits).value == "+86" + digits


def test_emails_are_trimmed_lowercased_and_validated() -> None:
    assert normalise.email("  John.Smith@Example.COM ").value == "john.smith@example.com"
    assert normalise.email("ｚｈａｎｇ＠ｑｑ．ｃｏｍ").value == "zhang@qq.com"
    assert normalise.email("mailto:a@b.cn").value == "a@b.cn"
    for bad in ("foo@", "@bar.com", "a b@c", "x@y", "a..b@c.com"):
        result = normalise.email(bad)
        assert result.value is None and result.error, bad


@given(
    st.from_regex(r"[a-z][a-z0-9]{0,10}(\.[a-z0-9]{1,5})?", fullmatch=True),
    st.sampled_from(["qq.com", "163.com", "acme.com.cn", "example.org"]),
)
def test_fast_and_exact_email_paths_agree(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    fast = normalise.email(address.upper()).value
    exact = normalise._email_slow(address).value
    assert fast == exact == address


@given(st.text(min_size=1, max_size=30))
def test_text_normalisation_is_idempotent(raw: str) -> None:
    once = normalise.text(raw)
    assert normalise.text(once) == once


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("北京字节跳动科技有限公司", "字节跳动科技"),
        ("(北京)星辰数据科技有限公司", "星辰数据科技有限公司"),
        ("（上海）云帆网络技术股份有限公司", "云帆网络技术"),
        ("广东省华南电子集团有限公司", "华南电子"),
        ("Acme Widgets Inc.", "ACME WIDGETS"),
        ("Acme Widgets, Ltd", "acme widgets llc"),
        ("Ｂｌｕｅ Ｓｋｙ Co., Ltd.", "Blue Sky"),
    ],
)
def test_company_variants_share_one_key(a: str, b: str) -> None:
    assert normalise.company_key(a) == normalise.company_key(b)


def test_different_companies_keep_different_keys() -> None:
    assert normalise.company_key("星辰数据科技有限公司") != normalise.company_key("星辰网络科技")
    assert normalise.company_key("北京大学") != normalise.company_key("大学")


def test_name_keys_ignore_order_script_and_homophones() -> None:
    assert normalise.name_key("John Smith") == normalise.name_key("Smith, John")
    assert normalise.name_key("张伟") == normalise.name_key("Zhang Wei")
    assert normalise.name_key("张伟") == normalise.name_key("张玮")
    assert normalise.name_key("张伟") != normalise.name_key("李伟")
    assert normalise.name_initials("Jonathan Smith") == normalise.name_initials("Jonathon Smith")


def test_join_name_uses_each_scripts_order() -> None:
    assert normalise.join_name("伟", "张") == "张伟"
    assert normalise.join_name("John", "Smith") == "John Smith"
    assert normalise.join_name(None, "Smith") == "Smith"


def test_place_keys_drop_administrative_suffixes() -> None:
    assert normalise.place_key("北京市") == normalise.place_key("北京")
    assert normalise.place_key("广东省") == normalise.place_key("广东")


@pytest.mark.parametrize(
    ("raw", "value"), [("120", "120"), ("1,200", "1200"), ("100-499", "100"),
                       ("500人以上", "500"), ("1000+", "1000")]
)
def test_headcount_ranges_take_the_lower_bound(raw: str, value: str) -> None:
    assert normalise.headcount(raw).value == value


def test_wechat_ids() -> None:
    assert normalise.wechat_id("Zhang_Wei88").value == "zhang_wei88"
    assert normalise.wechat_id("13800138000").value == "+8613800138000"
    assert normalise.wechat_id("ab").error
