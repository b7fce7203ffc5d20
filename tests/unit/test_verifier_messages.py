"""The consumer's wording: every verdict and reason in both languages, params filled in."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from verifier.domain import Reason, Verdict
from verifier.messages import (
    EN,
    LOCALES,
    REASON_CODES,
    ZH,
    format_date,
    format_datetime,
    labels,
    locale_for_tag,
    pick_locale,
    reason_message,
    verdict_advice,
    verdict_title,
)

# Every code the use case emits, with the params it sends (verifier/usecases.py).
EMITTED: dict[str, dict[str, str]] = {
    "unparseable": {},
    "not_our_code": {},
    "no_signature": {},
    "bad_signature": {},
    "unknown_key": {},
    "no_mac": {},
    "bad_mac": {},
    "never_issued": {},
    "never_commissioned": {},
    "returned": {},
    "scrapped": {},
    "recalled": {},
    "inactive": {"state": "destroyed"},
    "expired": {"expiry": "2024-05-31"},
    "pin_reused": {"first_used_at": "2024-05-31T10:15:00+00:00"},
    "pin_wrong": {},
    "pin_confirmed": {},
    "too_many_sessions": {"sessions": "7", "limit": "3"},
    "impossible_travel": {"km": "1234", "minutes": "42"},
    "diverted": {"market": "DE", "region": "CN-SH"},
    "seen_before": {"first_at": "2024-05-31T10:15:00+00:00", "first_region": "FR"},
}
HAN = re.compile(r"[\u4e00-\u9fff]")


def _reason(code: str, params: dict[str, str] | None = None) -> Reason:
    return Reason(code, "rule", Verdict.SUSPECT_CLONE, 0.5, params or {})


def test_every_emitted_code_has_a_text_of_its_own() -> None:
    assert set(EMITTED) == set(REASON_CODES)
    # The reason catalogue (the use case's reasons and the clone rules of the domain): none
    # unworded.
    from verifier import domain

    emitted = set(domain.REASONS) | {"too_many_sessions", "impossible_travel"}
    assert emitted <= set(REASON_CODES)


@pytest.mark.parametrize("verdict", list(Verdict))
def test_every_verdict_has_title_and_advice_in_both_languages(verdict: Verdict) -> None:
    en_title, zh_title = verdict_title(verdict, EN), verdict_title(verdict, ZH)
    en_advice, zh_advice = verdict_advice(verdict, EN), verdict_advice(verdict, ZH)
    assert en_title and en_advice and not HAN.search(en_title + en_advice)
    assert HAN.search(zh_title) and HAN.search(zh_advice)
    assert len(en_advice) > len(en_title)


def test_advice_says_what_to_do() -> None:
    counterfeit = verdict_advice(Verdict.COUNTERFEIT, EN)
    assert "Do not use" in counterfeit and "contact the brand" in counterfeit
    assert "Keep the pack" in counterfeit
    assert "Stop using" in verdict_advice(Verdict.RECALLED, EN)
    assert "return" in verdict_advice(Verdict.RECALLED, EN)
    assert "copied" in verdict_advice(Verdict.AUTHENTIC_SEEN_BEFORE, EN)
    assert "sealed pack" in verdict_advice(Verdict.AUTHENTIC_SEEN_BEFORE, EN)
    assert "请勿使用" in verdict_advice(Verdict.COUNTERFEIT, ZH)
    assert "停止使用" in verdict_advice(Verdict.RECALLED, ZH)


@pytest.mark.parametrize("code", sorted(EMITTED))
@pytest.mark.parametrize("locale", LOCALES)
def test_every_reason_has_a_filled_text(code: str, locale: str) -> None:
    text = reason_message(_reason(code, EMITTED[code]), locale)
    assert text and "{" not in text and "}" not in text and "?" not in text
    assert bool(HAN.search(text)) == (locale == ZH)
    assert text != reason_message(_reason("no_such_code"), locale)


@pytest.mark.parametrize(
    ("code", "en", "zh"),
    [
        ("too_many_sessions", ["7", "3"], ["7", "3"]),
        ("impossible_travel", ["1234 km", "42 minutes"], ["1234公里", "42分钟"]),
        ("diverted", ["Germany", "Shanghai, China"], ["德国", "中国上海市"]),
        ("expired", ["31 May 2024"], ["2024年5月31日"]),
        # Another consumer's PIN entry or first check: its day only, never the time.
        ("pin_reused", ["on 31 May 2024:"], ["已于2024年5月31日被输入过"]),
        ("seen_before", ["31 May 2024 in France"], ["2024年5月31日", "法国"]),
        ("inactive", ["destroyed"], ["已销毁"]),
    ],
)
def test_params_are_filled(code: str, en: list[str], zh: list[str]) -> None:
    reason = _reason(code, EMITTED[code])
    for part in en:
        assert part in reason_message(reason, EN)
    for part in zh:
        assert part in reason_message(reason, ZH)


def test_missing_params_fall_back_to_a_sentence_without_them() -> None:
    partial = _reason("seen_before", {"first_at": "2024-05-31T10:15:00+00:00"})
    assert reason_message(partial, EN) == "First checked on 31 May 2024."
    assert reason_message(_reason("seen_before"), EN) == "This code has been checked before."
    for code in REASON_CODES:
        for locale in LOCALES:
            text = reason_message(_reason(code), locale)
            assert text and "{" not in text and "?" not in text


def test_odd_param_values_are_shown_as_given() -> None:
    assert "melted" in reason_message(_reason("inactive", {"state": "melted"}), EN)
    assert "2024-13-01" in reason_message(_reason("expired", {"expiry": "2024-13-01"}), EN)


def test_unknown_code_gets_generic_text() -> None:
    assert reason_message(_reason("new_rule_2031"), EN) == "Another check flagged this scan."
    assert HAN.search(reason_message(_reason("new_rule_2031"), ZH))


def test_unknown_locale_speaks_english() -> None:
    assert verdict_title(Verdict.AUTHENTIC, "fr") == verdict_title(Verdict.AUTHENTIC, EN)
    assert reason_message(_reason("recalled"), "xx") == reason_message(_reason("recalled"), EN)


@pytest.mark.parametrize(
    ("header", "want"),
    [
        ("", EN),
        ("zh-CN,zh;q=0.9,en;q=0.8", ZH),
        ("zh", ZH),
        ("zh-Hans", ZH),
        ("zh-hans-CN", ZH),
        ("ZH-cn", ZH),
        ("en-US,en;q=0.9", EN),
        ("en;q=0.5, zh-CN;q=0.8", ZH),
        ("zh-CN;q=0.4, en-GB;q=0.6", EN),
        ("de-DE,fr;q=0.9", EN),
        ("de-DE,zh;q=0.3", ZH),
        ("zh-TW,en;q=0.5", EN),  # Traditional Chinese: we do not pretend to speak it
        ("zh-TW,zh;q=0.9,en;q=0.8", ZH),
        ("zh-CN;q=0, en", EN),
        ("zh-CN;q=abc, en;q=0.1", EN),
        ("zh-CN;q=2", EN),
        ("*", EN),
        ("en;q=0.8,zh;q=0.8", EN),  # a tie goes to the first
        (";;;,,,=", EN),
        ("x" * 10_000 + ",zh", EN),
    ],
)
def test_pick_locale(header: str, want: str) -> None:
    assert pick_locale(header) == want


def test_locale_for_tag() -> None:
    assert locale_for_tag("zh_CN") == ZH
    assert locale_for_tag("en-GB") == EN
    assert locale_for_tag("zh-TW") is None
    assert locale_for_tag("english") is None


def test_dates_and_times_in_each_format() -> None:
    assert format_date(date(2030, 12, 31), EN) == "31 Dec 2030"
    assert format_date(date(2030, 12, 31), ZH) == "2030年12月31日"
    late = datetime(2030, 12, 31, 20, 5, tzinfo=UTC)
    assert format_datetime(late, EN) == "31 Dec 2030, 20:05 UTC"
    assert format_datetime(late, ZH) == "2031年1月1日 04:05（北京时间）"
    assert format_datetime(late.replace(tzinfo=None), EN) == "31 Dec 2030, 20:05 UTC"


def test_labels_have_the_same_keys_in_both_languages() -> None:
    en, zh = labels(EN), labels(ZH)
    assert set(en) == set(zh)
    assert all(zh[key] and en[key] for key in en)


def test_the_history_summary_in_both_languages() -> None:
    from datetime import date

    from verifier.messages import history_summary

    first = history_summary(None, "", 1, too_many=False, elsewhere=False, locale=EN)
    assert first == ["This is the first check of this code."]
    seen = history_summary(
        date(2026, 5, 3), "Shanghai, China", 4, too_many=False, elsewhere=True, locale=EN
    )
    assert seen[0] == "First checked on 3 May 2026 in Shanghai, China."
    assert seen[1] == "Checked from 4 different phones or browsers so far."
    assert "A few checks are normal" in seen[2] and "another region" in seen[3]
    copied = history_summary(date(2026, 5, 3), "", 9, too_many=True, elsewhere=False, locale=ZH)
    assert copied[0] == "首次查验于2026年5月3日。" and "9部" in copied[1]
    assert "很可能已被复制" in copied[2] and len(copied) == 3
    reused = history_summary(
        date(2026, 5, 3), "", 2, too_many=False, elsewhere=False, locale=EN, suspect=True
    )
    assert not any("normal" in sentence for sentence in reused)
    one = history_summary(date(2026, 5, 3), "", 1, too_many=False, elsewhere=False, locale=EN)
    assert one[1] == "Every check so far came from one phone or browser."
    for sentences in (first, seen, one):
        assert not any(HAN.search(s) for s in sentences)
    assert all(HAN.search(s) for s in copied)


def test_region_names() -> None:
    from verifier.regions import region_name

    assert region_name("CN-SH", EN) == "Shanghai, China"
    assert region_name("CN-SH", ZH) == "中国上海市"
    assert (region_name("DE", EN), region_name("DE", ZH)) == ("Germany", "德国")
    assert region_name("US-CA", EN) == "California, United States"
    assert region_name("QQ", EN) == "QQ"  # unknown: shown as given, never an error
    assert region_name("CN-99", ZH) == "中国"  # an unknown subdivision: its country
