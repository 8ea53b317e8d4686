"""Normalising what people type: phones, emails, names, company names, places.

Pure functions; fast paths first because imports run them millions of times, with the
well-kept libraries (phonenumbers, email-validator, cleanco, pypinyin) behind them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from cleanco import basename as cleanco_basename
from email_validator import EmailNotValidError, validate_email
from pypinyin import lazy_pinyin

_SPACES = re.compile(r"\s+")
_ODD_SPACE = re.compile(r"[^\S ]")
_NON_PHONE = re.compile(r"[^\d+]")
_CN_MOBILE = re.compile(r"^(?:\+?86|0086)?(1[3-9]\d{9})$")
# A strict subset of valid addresses: anything it accepts is valid; the rest goes to
# email-validator, which is ~50x slower but exact and explains what is wrong.
_EMAIL_FAST = re.compile(
    r"^[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.[a-z]{2,24}$"
)
_CJK = re.compile(r"[\u3400-\u9fff]")
_NAME_SPLIT = re.compile(r"[\s,.·•・\-_/]+")
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
_PAREN = re.compile(r"[(\[（【][^)\]）】]*[)\]）】]")

# Longest first so 股份有限公司 is removed whole, not as 有限公司 leaving 股份.
_CN_COMPANY_SUFFIXES = tuple(
    sorted(
        {
            "股份有限公司", "有限责任公司", "集团有限公司", "集团股份有限公司", "有限公司",
            "集团公司", "集团", "分公司", "总公司", "公司", "工作室", "事务所",
        },
        key=len,
        reverse=True,
    )
)
_CN_PLACES = tuple(
    sorted(
        {
            "北京", "上海", "天津", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏",
            "浙江", "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南",
            "四川", "贵州", "云南", "陕西", "甘肃", "青海", "台湾", "内蒙古", "广西", "西藏",
            "宁夏", "新疆", "香港", "澳门", "深圳", "广州", "杭州", "南京", "苏州", "成都",
            "武汉", "西安", "厦门", "青岛", "大连", "宁波", "长沙", "郑州", "济南", "合肥",
            "福州", "沈阳", "昆明", "无锡", "东莞", "佛山",
        },
        key=len,
        reverse=True,
    )
)
_PLACE_SUFFIXES = ("特别行政区", "自治区", "省", "市", "区", "县")


@dataclass(frozen=True, slots=True)
class Normalised:
    """A cleaned value, or the reason it could not be cleaned."""

    value: str | None
    error: str | None = None


def text(raw: str | None) -> str | None:
    """Full-width → half-width (NFKC), collapse whitespace, strip; empty → None."""
    if raw is None:
        return None
    if not unicodedata.is_normalized("NFKC", raw):
        raw = unicodedata.normalize("NFKC", raw)
    cleaned = raw.strip()
    # Most values need nothing more; the regex only runs on odd spacing.
    if "  " in cleaned or _ODD_SPACE.search(cleaned):
        cleaned = _SPACES.sub(" ", cleaned)
    return cleaned or None


def phone(raw: str | None, default_region: str = "CN") -> Normalised:
    """E.164 phone number. Mainland mobiles take a regex fast path; the rest phonenumbers."""
    value = text(raw)
    if value is None:
        return Normalised(None)
    compact = _NON_PHONE.sub("", value)
    fast = _CN_MOBILE.match(compact)
    if fast:
        return Normalised("+86" + fast.group(1))
    return _phone_slow(value, default_region)


@lru_cache(maxsize=65536)
def _phone_slow(value: str, default_region: str) -> Normalised:
    try:
        parsed = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException as exc:
        return Normalised(None, f"not a phone number: {exc}")
    if not phonenumbers.is_valid_number(parsed):
        return Normalised(None, "not a valid phone number")
    return Normalised(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def email(raw: str | None) -> Normalised:
    """Lower-cased, trimmed and validated email address (syntax only, no DNS)."""
    value = text(raw)
    if value is None:
        return Normalised(None)
    value = value.replace(" ", "").lower().removeprefix("mailto:")
    if _EMAIL_FAST.match(value):
        return Normalised(value)
    return _email_slow(value)


@lru_cache(maxsize=16384)
def _email_slow(value: str) -> Normalised:
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return Normalised(None, str(exc))
    return Normalised(result.normalized.lower())


def email_domain(address: str | None) -> str | None:
    """The domain of a normalised email address."""
    if not address or "@" not in address:
        return None
    return address.rsplit("@", 1)[1]


def person_name(raw: str | None) -> str | None:
    """A display name: NFKC, single spaces; Latin names title-cased when all upper/lower."""
    value = text(raw)
    if value is None or _CJK.search(value):
        return value.replace(" ", "") if value and _CJK.search(value) else value
    if value.isupper() or value.islower():
        return value.title()
    return value


def join_name(given: str | None, family: str | None) -> str | None:
    """Combine given and family name the way each script writes them."""
    given, family = text(given), text(family)
    if not given or not family:
        return given or family
    if _CJK.search(given + family):
        return family + given
    return f"{given} {family}"


@lru_cache(maxsize=8192)
def _char_pinyin(char: str) -> str:
    return lazy_pinyin(char)[0]


def name_tokens(name: str | None) -> tuple[str, ...]:
    """Phonetic tokens of a person's name: pinyin per Han character, else lower-case words.

    Pinyin makes homophone typos (张伟/张玮) and Latin spellings (Zhang Wei) line up.
    """
    if not name:
        return ()
    return _name_tokens(name)


@lru_cache(maxsize=262144)
def _name_tokens(name: str) -> tuple[str, ...]:
    value = text(name) or ""
    if _CJK.search(value):
        tokens: list[str] = []
        for part in _NAME_SPLIT.split(value.lower()):
            if not part:
                continue
            if _CJK.search(part):
                tokens.extend(_char_pinyin(ch) for ch in part if not ch.isspace())
            else:
                tokens.append(part)
        return tuple(tokens)
    return tuple(t for t in _NAME_SPLIT.split(value.lower()) if t)


_HONORIFIC_CN = re.compile(r"^([\u3400-\u9fff]{1,2}?)(先生|女士|小姐|老师|太太|同学|总|经理)$")
_HONORIFIC_EN = re.compile(r"^(?:mr|mrs|ms|miss|dr|prof)\.?\s+([a-z'-]+)$", re.IGNORECASE)


def honorific_surname(name: str | None) -> str | None:
    """The phonetic surname when ``name`` is only a form of address ("李先生", "Mr. Smith").

    Call centres and forms often record people this way; such a name says nothing beyond
    the surname, so it must neither block a match on the phone nor win over a full name.
    """
    if not name:
        return None
    value = text(name) or ""
    match = _HONORIFIC_CN.match(value.replace(" ", ""))
    if match:
        return "".join(_char_pinyin(ch) for ch in match.group(1))
    match = _HONORIFIC_EN.match(value)
    return match.group(1).lower() if match else None


def is_han_name(name: str | None) -> bool:
    """True for a name written in Chinese characters."""
    return bool(name) and bool(_CJK.search(name or ""))


def name_key(name: str | None) -> str | None:
    """Order-free phonetic key: 'Smith, John' and 'John Smith' (and 张伟, Zhang Wei) agree."""
    tokens = name_tokens(name)
    return "".join(sorted(tokens)) or None


def name_initials(name: str | None) -> str | None:
    """Sorted initials of the name tokens: tolerant of typos after the first letter."""
    tokens = name_tokens(name)
    return "".join(sorted(t[0] for t in tokens)) or None


@lru_cache(maxsize=131072)
def company_key(raw: str | None) -> str | None:
    """Matching key of a company name.

    1. NFKC (full-width → half-width) and lower-case.
    2. Drop bracketed parts, which are regions or notes: (北京), （上海）, [HK].
    3. Chinese: drop a leading province/city (北京…, 广东省…) and legal-form suffixes
       (股份有限公司, 有限公司, 集团, …).
    4. Latin: cleanco removes legal forms (Inc, Ltd, LLC, Co., GmbH, …), repeatedly.
    5. Remove spaces and punctuation.
    """
    value = text(raw)
    if value is None:
        return None
    value = _PAREN.sub("", value.lower()).strip()
    if _CJK.search(value):
        for place in _CN_PLACES:
            if value.startswith(place) and len(value) > len(place) + 2:
                value = value[len(place):]
                for suffix in _PLACE_SUFFIXES:
                    if value.startswith(suffix):
                        value = value[len(suffix):]
                        break
                break
        for suffix in _CN_COMPANY_SUFFIXES:
            if value.endswith(suffix) and len(value) > len(suffix) + 1:
                value = value[: -len(suffix)]
                break
    else:
        # "Co., Ltd." is two legal forms; cleanco removes one per call.
        for _ in range(3):
            stripped = cleanco_basename(value) or value
            if stripped == value:
                break
            value = stripped
    key = _PUNCT.sub("", value)
    return key or None


@lru_cache(maxsize=8192)
def place_key(raw: str | None) -> str | None:
    """City or province key: NFKC, lower, without 市/省/区 suffixes (北京市 == 北京)."""
    value = text(raw)
    if value is None:
        return None
    value = value.lower()
    for suffix in _PLACE_SUFFIXES:
        if value.endswith(suffix) and len(value) > len(suffix) + 1:
            value = value[: -len(suffix)]
            break
    return _PUNCT.sub("", value) or None


def address_key(raw: str | None) -> str | None:
    """Address key for similarity: NFKC, lower, no spaces or punctuation."""
    value = text(raw)
    if value is None:
        return None
    return _PUNCT.sub("", value.lower()) or None


def wechat_id(raw: str | None) -> Normalised:
    """WeChat ids are 6–20 of letters, digits, '-' and '_', starting with a letter."""
    value = text(raw)
    if value is None:
        return Normalised(None)
    value = value.replace(" ", "")
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{5,19}", value):
        return Normalised(value.lower())
    # Many people use their phone number as WeChat id.
    as_phone = phone(value)
    if as_phone.value and as_phone.value.startswith("+86"):
        return Normalised(as_phone.value)
    return Normalised(None, "not a valid WeChat id")


_HEADCOUNT = re.compile(r"(\d[\d,]*)\s*(?:[-~–至到]\s*(\d[\d,]*))?")


def headcount(raw: str | None) -> Normalised:
    """Headcount from '120', '1,200', '100-499', '500人以上', '1000+'. Ranges → lower bound."""
    value = text(raw)
    if value is None:
        return Normalised(None)
    match = _HEADCOUNT.search(value)
    if not match:
        return Normalised(None, f"not a headcount: {value!r}")
    return Normalised(match.group(1).replace(",", ""))
