"""Messaging decisions without a database: machine traffic, quiet hours, out-of-office
replies, bounces, rendering and link tracking."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.messaging import rules
from leadflow.messaging.rules import Hit, MachinePolicy, QuietHours

SENT = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
POLICY = MachinePolicy(networks=rules.parse_networks(["40.92.0.0/15", "2a01:111::/32", "bad"]),
                       after_delivery_s=10, burst_s=2)
BROWSER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/126.0 Safari/537.36")
LATER = SENT + timedelta(hours=1)


# --- machine traffic ----------------------------------------------------------------------


@pytest.mark.parametrize("agent", [
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
    "Barracuda Sentinel (EE)", "Mimecast-Url-Protect", "Proofpoint URL Defense",
    "Microsoft SafeLinks", "curl/8.5.0", "python-requests/2.32", "Googlebot/2.1", "", None,
    "Mozilla/5.0 (compatible; bingbot/2.0)", "Mozilla/5.0 HeadlessChrome/120.0",
])
def test_scanner_agents_are_machines(agent: str | None) -> None:
    verdict = rules.machine_verdict(Hit("open", LATER, agent, "203.0.113.9", sent_at=SENT), POLICY)
    assert verdict.machine and verdict.reason and verdict.reason.startswith("user agent")


def test_a_browser_late_after_delivery_is_human() -> None:
    assert rules.machine_verdict(Hit("open", LATER, BROWSER, "203.0.113.9", sent_at=SENT),
                                 POLICY) == (False, None)


@pytest.mark.parametrize("ip", ["40.93.1.2", "2a01:111:f400::1"])
def test_scanner_networks_are_machines(ip: str) -> None:
    verdict = rules.machine_verdict(Hit("click", LATER, BROWSER, ip, sent_at=SENT,
                                        url="https://a.example", link_count=1), POLICY)
    assert verdict == (True, "scanner network")


def test_unparseable_addresses_are_not_in_any_network() -> None:
    assert not rules.in_networks("not-an-ip", POLICY.networks)
    assert not rules.in_networks(None, POLICY.networks)


@given(st.floats(min_value=0, max_value=9.99))
def test_a_click_within_seconds_of_delivery_is_a_machine(delay: float) -> None:
    hit = Hit("click", SENT + timedelta(seconds=delay), BROWSER, "203.0.113.9", sent_at=SENT,
              url="https://a.example", link_count=1)
    verdict = rules.machine_verdict(hit, POLICY)
    assert verdict.machine and "after delivery" in (verdict.reason or "")


@given(st.floats(min_value=10, max_value=10_000_000))
def test_a_later_single_click_is_human(delay: float) -> None:
    hit = Hit("click", SENT + timedelta(seconds=delay), BROWSER, "203.0.113.9", sent_at=SENT,
              url="https://a.example", link_count=3)
    assert not rules.machine_verdict(hit, POLICY).machine


@given(links=st.integers(min_value=2, max_value=8), gap=st.floats(min_value=0, max_value=2))
def test_every_link_clicked_at_once_is_a_machine(links: int, gap: float) -> None:
    urls = [f"https://a.example/{i}" for i in range(links)]
    earlier = tuple((u, LATER + timedelta(seconds=gap * i / links)) for i, u in enumerate(urls[:-1]))
    hit = Hit("click", LATER + timedelta(seconds=gap), BROWSER, "203.0.113.9", sent_at=SENT,
              url=urls[-1], link_count=links, earlier_clicks=earlier)
    assert rules.machine_verdict(hit, POLICY) == (True, rules.BURST_REASON)


def test_clicks_on_two_links_a_minute_apart_are_human() -> None:
    hit = Hit("click", LATER + timedelta(minutes=1), BROWSER, None, sent_at=SENT,
              url="https://a.example/2", link_count=2,
              earlier_clicks=(("https://a.example/1", LATER),))
    assert not rules.machine_verdict(hit, POLICY).machine


def test_the_same_link_clicked_twice_quickly_is_not_a_burst() -> None:
    hit = Hit("click", LATER + timedelta(seconds=1), BROWSER, None, sent_at=SENT,
              url="https://a.example/1", link_count=3,
              earlier_clicks=(("https://a.example/1", LATER),))
    assert not rules.machine_verdict(hit, POLICY).machine


# --- quiet hours --------------------------------------------------------------------------

NIGHT = QuietHours(time(21), time(8))
ZONES = st.sampled_from(["Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC",
                         "Asia/Kolkata"])
MOMENTS = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1),
                       timezones=st.just(UTC))


def test_2am_in_shanghai_waits_for_8am() -> None:
    now = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)  # 02:00 on the 26th in Shanghai
    assert rules.earliest_send(now, ZoneInfo("Asia/Shanghai"), NIGHT) == \
        datetime(2026, 11, 26, 0, 0, tzinfo=UTC)


def test_late_evening_waits_for_the_next_morning() -> None:
    now = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai
    assert rules.earliest_send(now, ZoneInfo("Asia/Shanghai"), NIGHT) == \
        datetime(2026, 11, 27, 0, 0, tzinfo=UTC)


@settings(max_examples=300)
@given(now=MOMENTS, zone=ZONES)
def test_earliest_send_is_never_early_nor_in_the_night(now: datetime, zone: str) -> None:
    tz = ZoneInfo(zone)
    at = rules.earliest_send(now, tz, NIGHT)
    local = now.astimezone(tz).time().replace(tzinfo=None)
    assert at >= now
    assert at - now <= timedelta(hours=12)  # 21:00 → 08:00 is the longest wait
    if not NIGHT.contains(local):
        assert at == now
    else:
        assert not NIGHT.contains(at.astimezone(tz).time().replace(tzinfo=None))


@given(start=st.times(), end=st.times(), probe=st.times())
def test_quiet_window_contains_its_start_and_not_its_end(start: time, end: time,
                                                         probe: time) -> None:
    quiet = QuietHours(start, end)
    if start != end:
        assert quiet.contains(start) and not quiet.contains(end)
    else:
        assert not quiet.contains(probe)


# --- out of office and bounces ------------------------------------------------------------

TODAY = date(2026, 11, 26)


@pytest.mark.parametrize(("subject", "headers", "text", "back"), [
    ("Out of Office: Re: leadflow", {}, "I am back on 3 December.", date(2026, 12, 3)),
    ("Automatic reply: pricing", {}, "Out until 2026-12-03, limited access to email.",
     date(2026, 12, 3)),
    ("自动回复：产品介绍", {}, "您好，我正在休假，12月3日返回。", date(2026, 12, 3)),
    ("休假中", {}, "2027年1月5日回来上班", date(2027, 1, 5)),
    ("不在办公室", {}, "有急事请联系同事。", None),
    ("Re: your offer", {"Auto-Submitted": "auto-replied"}, "Away from 1 to 4 December",
     date(2026, 12, 4)),
    ("Re: your offer", {"X-Autoreply": "yes"}, "Back January 8th", date(2027, 1, 8)),
    ("Out of office", {}, "Returning on December 1st, 2026. Sent 2025-01-01.",
     date(2026, 12, 1)),
])
def test_out_of_office_is_recognised_with_its_return_date(
        subject: str, headers: dict[str, str], text: str, back: date | None) -> None:
    assert rules.detect_out_of_office(subject=subject, headers=headers, text=text,
                                      received_on=TODAY) == (True, back)


@pytest.mark.parametrize(("subject", "headers", "text"), [
    ("Re: your offer", {}, "I'm out of the office until Monday, but yes — let's talk!"),
    ("Re: pricing", {"Auto-Submitted": "no"}, "Sounds good, call me on 3 December."),
    ("回复：产品介绍", {}, "好的，请下周联系我。"),
])
def test_a_person_writing_is_never_out_of_office(subject: str, headers: dict[str, str],
                                                 text: str) -> None:
    assert rules.detect_out_of_office(subject=subject, headers=headers, text=text,
                                      received_on=TODAY) == (False, None)


@given(st.dates(min_value=TODAY, max_value=TODAY + timedelta(days=300)))
def test_any_stated_return_date_is_found(back: date) -> None:
    for text in (f"back on {back.day} {back:%B} {back.year}", f"until {back.isoformat()}",
                 f"{back.month}月{back.day}日返回"):
        assert rules.return_date(text, TODAY) == back


def test_past_dates_are_not_return_dates() -> None:
    assert rules.return_date("I wrote this on 2025-01-01", TODAY) is None


def test_delivery_reports_are_bounces() -> None:
    assert rules.is_bounce(from_address="MAILER-DAEMON@mx.example",
                           subject="Undelivered Mail Returned to Sender", headers={})
    assert rules.is_bounce(from_address="x@y.example", subject="",
                           headers={"Content-Type": "multipart/report; report-type=delivery-status"})
    assert not rules.is_bounce(from_address="anna@customer.example",
                               subject="Undelivered promises", headers={})


# --- rendering and tracking ---------------------------------------------------------------


def test_variables_render_and_unknown_ones_are_empty() -> None:
    variables = rules.lead_variables(name="张伟", company="示例科技", title=None, city="上海",
                                     rep_name="李娜")
    assert rules.render_template("{{first_name}}您好，{{company}}{{nope}} — {{rep_name}}",
                                 variables) == "张伟您好，示例科技 — 李娜"
    assert rules.first_name("Anna Schmidt") == "Anna"


def test_templates_cannot_reach_python() -> None:
    with pytest.raises(rules.RenderError):
        rules.render_template("{{ ''.__class__.__mro__[1].__subclasses__() }}", {})
    with pytest.raises(rules.RenderError):
        rules.render_template("{% if %}", {})


URLS = rules.TrackingUrls("https://t.example", "tok123456")


def test_text_email_gets_tracked_links_pixel_and_unsubscribe() -> None:
    body = "Hi,\nsee https://corp.example/pricing?a=1&b=2. Or (https://corp.example/demo)\nBye"
    email = rules.tracked_email(subject="S", body=body, urls=URLS)
    assert rules.links_in(body) == ("https://corp.example/pricing?a=1&b=2",
                                    "https://corp.example/demo")
    tracked = URLS.click("https://corp.example/pricing?a=1&b=2")
    assert parse_qs(urlsplit(tracked).query)["u"] == ["https://corp.example/pricing?a=1&b=2"]
    assert f"see {tracked}. Or ({URLS.click('https://corp.example/demo')})" in email.text
    assert "https://t.example/u/tok123456" in email.text
    assert 'href="https://t.example/t/c/tok123456?u=https%3A%2F%2Fcorp.example%2Fpricing' in email.html
    assert email.html.count("/t/o/tok123456.gif") == 1
    assert "&lt;" not in rules.tracked_email(subject="", body="a < b", urls=URLS).text


def test_html_email_links_are_rewritten() -> None:
    body = ('<html><body><p>Hi <a href="https://corp.example/a?x=1&amp;y=2">pricing</a> '
            '<a href="mailto:x@y.example">mail</a></p></body></html>')
    email = rules.tracked_email(subject="S", body=body, urls=URLS)
    assert rules.links_in(body) == ("https://corp.example/a?x=1&y=2",)
    assert "mailto:x@y.example" in email.html
    assert email.html.index("tok123456.gif") < email.html.index("</body>")
    assert f"pricing ({URLS.click('https://corp.example/a?x=1&y=2')})" in email.text


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_any_body_renders_and_only_web_links_are_tracked(body: str) -> None:
    email = rules.tracked_email(subject="s", body=body, urls=URLS)
    assert "tok123456.gif" in email.html
    for link in rules.links_in(body):
        assert rules.is_web_url(link)


def test_message_id_is_stable_and_names_the_token() -> None:
    first = rules.message_id("task:1", "tok123456", "corp.example")
    assert first == rules.message_id("task:1", "tok123456", "corp.example")
    assert first != rules.message_id("task:2", "tok123456", "corp.example")
    assert rules.tokens_in_references(f"<other@x> {first}") == ["tok123456"]


@given(st.integers(min_value=1, max_value=100))
def test_retry_delay_grows_and_is_capped(attempts: int) -> None:
    assert rules.retry_delay(attempts) <= rules.retry_delay(attempts + 1) <= timedelta(hours=6)
