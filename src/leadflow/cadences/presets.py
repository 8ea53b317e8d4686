"""The brief's cadences and nurture programs, shipped as presets an admin installs and edits.

Day offsets are working days (weekends and Chinese public holidays skipped). Templates use
``{{ first_name }}``, ``{{ name }}``, ``{{ company }}``, ``{{ rep_name }}`` and ``{{ topic }}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from leadflow.cadences.models import Channel, Maturity, Purpose

MORNING = (9 * 60, 12 * 60)
AFTERNOON = (14 * 60, 18 * 60)
WORKDAY = (9 * 60, 18 * 60)


@dataclass(frozen=True, slots=True)
class PresetStep:
    """One step of a preset."""

    day: int
    channel: Channel
    automatic: bool = False
    window: tuple[int, int] = WORKDAY
    subject: str = ""
    body: str = ""
    script: str = ""


@dataclass(frozen=True, slots=True)
class Preset:
    """A ready-made cadence or nurture program."""

    key: str
    name: str
    description: str
    steps: tuple[PresetStep, ...]
    purpose: Purpose = Purpose.SALES
    maturity: Maturity | None = None


_INTRO_SUBJECT = "{{ company or 'Your team' }} and leadflow"
_INTRO_BODY = ("Hi {{ first_name }},\n\nThanks for your interest. I look after customers like "
               "{{ company or 'yours' }} and would love to hear what you are working on. "
               "Here is a short case study: https://example.com/case/retail\n\n"
               "Best,\n{{ rep_name }}")
_FOLLOW_SUBJECT = "Quick follow-up, {{ first_name }}"
_FOLLOW_BODY = ("Hi {{ first_name }},\n\nI tried to reach you by phone. Is there a good time "
                "this week for a 15-minute call?\n\n{{ rep_name }}")
_BREAKUP_BODY = ("Hi {{ first_name }},\n\nI have not been able to reach you, so this is my "
                 "last note for now. If the timing changes, just reply.\n\n{{ rep_name }}")
_CALL_SCRIPT = ("Introduce yourself and why you call (their form / event). Ask: what made them "
                "look now? Who else decides? Timeline and budget? Offer a demo slot.")
_VOICEMAIL_SCRIPT = "Name, company, one line of value, your number twice. Under 30 seconds."
_NURTURE_BODY = ("Hi {{ first_name }},\n\nThis week's reading on {{ topic or 'sales growth' }}: "
                 "https://example.com/blog/lead-scoring\n\nThe leadflow team")

PRESETS: tuple[Preset, ...] = (
    Preset(
        "7in7", "7 touches in 7 days",
        "Speed-to-lead for hot leads: call at once, then a touch a day across channels.",
        (PresetStep(0, Channel.CALL, script=_CALL_SCRIPT),
         PresetStep(0, Channel.EMAIL, True, subject=_INTRO_SUBJECT, body=_INTRO_BODY),
         PresetStep(1, Channel.CALL, window=AFTERNOON, script=_CALL_SCRIPT),
         PresetStep(2, Channel.SMS, body="Hi {{ first_name }}, {{ rep_name }} here. "
                                         "When is a good time for a quick call?"),
         PresetStep(3, Channel.CALL, window=MORNING, script=_CALL_SCRIPT),
         PresetStep(4, Channel.VOICEMAIL, script=_VOICEMAIL_SCRIPT),
         PresetStep(6, Channel.EMAIL, True, subject=_FOLLOW_SUBJECT, body=_BREAKUP_BODY)),
    ),
    Preset(
        "9in18", "9 touches in 18 days",
        "Warm leads: 3–4 attempts in the first 4–5 days, then spaced about 5 days.",
        (PresetStep(0, Channel.CALL, script=_CALL_SCRIPT),
         PresetStep(0, Channel.EMAIL, True, subject=_INTRO_SUBJECT, body=_INTRO_BODY),
         PresetStep(1, Channel.CALL, window=AFTERNOON, script=_CALL_SCRIPT),
         PresetStep(2, Channel.WECHAT, body="{{ first_name }}，您好，我是{{ rep_name }}。"),
         PresetStep(4, Channel.CALL, window=MORNING, script=_CALL_SCRIPT),
         PresetStep(8, Channel.EMAIL, True, subject=_FOLLOW_SUBJECT, body=_FOLLOW_BODY),
         PresetStep(9, Channel.CALL, script=_CALL_SCRIPT),
         PresetStep(13, Channel.GHOST_CALL, script="Call; hang up on voicemail."),
         PresetStep(18, Channel.EMAIL, True, subject=_FOLLOW_SUBJECT, body=_BREAKUP_BODY)),
    ),
    Preset(
        "18in35", "18 touches in 35 days",
        "Enterprise accounts: a long, multi-channel sequence.",
        tuple(
            PresetStep(day, channel, channel == Channel.EMAIL,
                       subject=_FOLLOW_SUBJECT if channel == Channel.EMAIL else "",
                       body=_FOLLOW_BODY if channel == Channel.EMAIL else "",
                       script=_CALL_SCRIPT if channel == Channel.CALL else "")
            for day, channel in (
                (0, Channel.CALL), (0, Channel.EMAIL), (1, Channel.CALL), (2, Channel.SOCIAL),
                (3, Channel.CALL), (4, Channel.EMAIL), (6, Channel.CALL),
                (8, Channel.VOICEMAIL), (10, Channel.EMAIL), (12, Channel.CALL),
                (14, Channel.WECHAT), (17, Channel.CALL), (20, Channel.EMAIL),
                (23, Channel.CALL), (26, Channel.SOCIAL), (29, Channel.CALL),
                (32, Channel.EMAIL), (35, Channel.CALL))
        ),
    ),
    Preset(
        "persistent6", "Persistent 6",
        "The brief's rule: 3–4 attempts in the first 4–5 days, then every ~5 days; "
        "6 attempts before closing as unreachable.",
        (PresetStep(0, Channel.CALL, script=_CALL_SCRIPT),
         PresetStep(1, Channel.CALL, window=AFTERNOON, script=_CALL_SCRIPT),
         PresetStep(2, Channel.EMAIL, True, subject=_FOLLOW_SUBJECT, body=_FOLLOW_BODY),
         PresetStep(4, Channel.CALL, window=MORNING, script=_CALL_SCRIPT),
         PresetStep(9, Channel.CALL, script=_CALL_SCRIPT),
         PresetStep(14, Channel.VOICEMAIL, script=_VOICEMAIL_SCRIPT)),
    ),
    Preset(
        "nurture_warm", "Warm nurture: weekly topic email",
        "Interested, researching leads: one email a week on the topic they cared about.",
        tuple(PresetStep(day, Channel.EMAIL, True, subject="{{ topic or 'Ideas' }} for "
                         "{{ company or 'your team' }}", body=_NURTURE_BODY)
              for day in (0, 5, 10, 15, 20, 25)),
        Purpose.NURTURE, Maturity.WARM,
    ),
    Preset(
        "nurture_cold", "Cold nurture: monthly digest",
        "Long-followed leads with no interest yet: one email a month.",
        tuple(PresetStep(day, Channel.EMAIL, True, subject="This month in "
                         "{{ topic or 'sales' }}", body=_NURTURE_BODY)
              for day in (0, 21, 42, 63)),
        Purpose.NURTURE, Maturity.COLD,
    ),
)
PRESETS_BY_KEY = {p.key: p for p in PRESETS}
