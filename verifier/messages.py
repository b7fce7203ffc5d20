"""What the consumer reads: verdict titles, advice and reason messages, in English and
Simplified Chinese.

Pure: standard library, the verification domain and region names (verifier.regions, from
pycountry's tables). The HTTP page and the gRPC service
(``Reason.message``) both word their answers here, so a phone page and an app say the same
thing. Every verdict and every reason code the use case emits has a text in every locale
(tests/unit/test_verifier_messages.py checks it); an unknown reason code gets a generic text
rather than an error, so a new rule never breaks the page.

Times are shown in UTC in English and in Beijing time (UTC+8, 北京时间) in Chinese, each
labelled, because that is what each reader expects and we do not know the phone's zone.

Longer than 500 lines on purpose: it is a text catalogue (two languages, every verdict, reason
and page label side by side), read and translated as one table; its logic is a few lines. The
reasons' rules, verdicts and weights are not here but in verifier.domain.REASONS, keyed by the
same codes (tests/unit/test_verifier_usecases.py checks that the two key sets are equal).
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone

from verifier.domain import Reason, Verdict
from verifier.regions import region_name

EN = "en"
ZH = "zh-CN"
LOCALES = (EN, ZH)
DEFAULT_LOCALE = EN

_MAX_ACCEPT_LANGUAGE = 512  # a longer header is cut: the first preferences are what matter
_SIMPLIFIED = frozenset({"zh", "zh-cn", "zh-hans", "zh-hans-cn", "zh-sg", "zh-hans-sg", "zh-my"})
_BEIJING = timezone(timedelta(hours=8))


def locale_for_tag(tag: str) -> str | None:
    """The locale we speak for one language tag (``en-GB`` → en, ``zh-Hans`` → zh-CN), or
    None when we speak no variant of it (``de``; ``zh-TW``, which is Traditional Chinese)."""
    norm = tag.strip().lower().replace("_", "-")
    if norm in _SIMPLIFIED:
        return ZH
    if norm == "en" or norm.startswith("en-"):
        return EN
    return None


def pick_locale(accept_language: str) -> str:
    """The locale for an ``Accept-Language`` header (RFC 9110 §12.5.4): the supported
    language with the highest q-value, the earlier one on a tie; ``en`` when none is
    supported or the header is empty or malformed. zh, zh-CN and zh-Hans give zh-CN."""
    best: tuple[float, int, str] | None = None
    for position, item in enumerate(accept_language[:_MAX_ACCEPT_LANGUAGE].split(",")):
        tag, _, params = item.partition(";")
        locale = locale_for_tag(tag)
        if locale is None:
            continue
        q = _q_value(params)
        if q <= 0.0:
            continue
        if best is None or q > best[0]:
            best = (q, position, locale)
    return best[2] if best is not None else DEFAULT_LOCALE


def _q_value(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def _locale(locale: str) -> str:
    return locale if locale in LOCALES else DEFAULT_LOCALE


# ---------------------------------------------------------------------------------- verdicts

_TITLES: dict[Verdict, dict[str, str]] = {
    Verdict.AUTHENTIC: {EN: "Genuine product", ZH: "正品"},
    Verdict.AUTHENTIC_SEEN_BEFORE: {
        EN: "Genuine code, checked before",
        ZH: "正品码，此前已被查验过",
    },
    Verdict.SUSPECT_CLONE: {EN: "Suspected copy", ZH: "疑似复制码"},
    Verdict.COUNTERFEIT: {EN: "Counterfeit", ZH: "假冒产品"},
    Verdict.RECALLED: {EN: "Recalled", ZH: "已召回"},
    Verdict.EXPIRED: {EN: "Expired", ZH: "已过期"},
    Verdict.INACTIVE: {EN: "Code no longer active", ZH: "此码已失效"},
    Verdict.DIVERTED: {EN: "Genuine, but not for this market", ZH: "正品，但非本地区销售"},
    Verdict.INVALID: {EN: "Not a code we can check", ZH: "无法查验的码"},
}

_ADVICE: dict[Verdict, dict[str, str]] = {
    Verdict.AUTHENTIC: {
        EN: "This is the first check of this code: the product was made by the brand. "
        "If the pack has a hidden PIN, enter it below to confirm that you are its first opener.",
        ZH: "这是此码的首次查验，产品为品牌方生产的正品。"
        "如包装上有隐藏验证码，请在下方输入，以确认您是首位开启者。",
    },
    Verdict.AUTHENTIC_SEEN_BEFORE: {
        EN: "The code is genuine and has been checked before. That is normal if you or your "
        "shop checked it already. If you have just opened a sealed pack and nobody checked "
        "it before you, this code may have been copied: enter the hidden PIN if the pack "
        "has one, and contact the brand if in doubt.",
        ZH: "此码为正品码，且此前已被查验过。如果之前是您本人或商家查验的，这属正常情况。"
        "如果您刚打开一个密封包装，而此前无人查验过，此码可能已被复制："
        "如包装上有隐藏验证码请输入验证，如有疑问请联系品牌方。",
    },
    Verdict.SUSPECT_CLONE: {
        EN: "This code shows signs of having been copied onto other packs. Do not use the "
        "product until you are sure. Keep the pack and the receipt, and contact the brand "
        "or the shop where you bought it.",
        ZH: "此码有被复制到其他包装上的迹象。在确认之前请勿使用本产品。"
        "请保留包装和购物凭证，并联系品牌方或购买商家。",
    },
    Verdict.COUNTERFEIT: {
        EN: "This code was not issued by the brand: the product is very likely fake. Do not "
        "use it. Keep the pack and the receipt, and contact the brand or your local "
        "consumer protection authority.",
        ZH: "此码并非品牌方发放，产品极可能是假冒品。请勿使用。"
        "请保留包装和购物凭证，并联系品牌方或当地市场监管部门（12315）。",
    },
    Verdict.RECALLED: {
        EN: "The brand has recalled this product. Stop using it and return it to the shop "
        "or follow the brand's recall instructions.",
        ZH: "品牌方已召回本产品。请立即停止使用，并退回购买商家或按品牌方的召回说明处理。",
    },
    Verdict.EXPIRED: {
        EN: "This product is past its expiry date. Do not use it; return it to the shop "
        "if you bought it recently.",
        ZH: "本产品已超过有效期，请勿使用；如系近期购买，请退回购买商家。",
    },
    Verdict.INACTIVE: {
        EN: "This code is no longer active, so it should not be on a product for sale. "
        "Do not use the product and contact the brand.",
        ZH: "此码已失效，不应出现在在售产品上。请勿使用本产品，并联系品牌方。",
    },
    Verdict.DIVERTED: {
        EN: "The product is genuine but was meant for sale in another market. It may lack "
        "local labelling or warranty; ask the shop or the brand.",
        ZH: "本产品为正品，但原定在其他地区销售（疑似窜货），可能没有本地标签或保修。"
        "请向购买商家或品牌方咨询。",
    },
    Verdict.INVALID: {
        EN: "This code does not belong to a brand that uses this service, or it was not "
        "scanned completely. Scan it again; if this page stays, ask the brand.",
        ZH: "此码不属于使用本服务的品牌，或未能完整扫描。"
        "请重新扫描；如仍显示此页面，请咨询品牌方。",
    },
}


def verdict_title(verdict: Verdict, locale: str) -> str:
    """A short headline for the verdict, e.g. ``Genuine product`` / ``正品``."""
    return _TITLES[verdict][_locale(locale)]


def verdict_advice(verdict: Verdict, locale: str) -> str:
    """What the consumer should do now, in one or two sentences."""
    return _ADVICE[verdict][_locale(locale)]


# ----------------------------------------------------------------------------------- reasons

# code -> locale -> texts, richest first: the first whose params are all given is used; the
# last needs none (a reason whose params went missing still reads as a sentence).
Texts = tuple[str, ...]


def _fixed(en: str, zh: str) -> dict[str, Texts]:
    return {EN: (en,), ZH: (zh,)}


def _filled(en: Texts, zh: Texts) -> dict[str, Texts]:
    return {EN: en, ZH: zh}


_REASONS: dict[str, dict[str, Texts]] = {
    "unparseable": _fixed(
        "The scanned link is not a complete, readable product code.",
        "扫描到的链接不是完整、可识别的产品码。",
    ),
    "not_our_code": _fixed(
        "This code is not registered by any brand that uses this service.",
        "此码未在本服务的任何品牌下登记。",
    ),
    "no_signature": _fixed(
        "The code came without its digital signature (as in the text printed under the "
        "barcode), so only its serial number could be checked.",
        "此码未附带数字签名（如条码下方印刷的文字），因此仅核对了序列号。",
    ),
    "bad_signature": _fixed(
        "The code's digital signature does not match: the brand did not make it.",
        "此码的数字签名校验失败，并非品牌方生成。",
    ),
    "unknown_key": _fixed(
        "The code was signed with a key the brand never published.",
        "此码所用的签名密钥不是品牌方公布的密钥。",
    ),
    "no_mac": _fixed(
        "The code came without its security digits (as in the text printed under the "
        "barcode), so only its serial number could be checked.",
        "此码未附带防伪校验码（如条码下方印刷的文字），因此仅核对了序列号。",
    ),
    "bad_mac": _fixed(
        "The code's security digits do not match: the brand did not make it.",
        "此码的防伪校验码不匹配，并非品牌方生成。",
    ),
    "never_issued": _fixed(
        "The brand never issued this serial number.",
        "品牌方从未发放过此序列号。",
    ),
    "never_commissioned": _fixed(
        "This serial number was issued but never printed on a finished product.",
        "此序列号已发放，但从未印制到成品上（未激活）。",
    ),
    "returned": _fixed(
        "This code was handed back unused at the factory and never went on a product.",
        "此码在工厂作为未使用码退回，从未用于任何产品。",
    ),
    "scrapped": _fixed(
        "This label was scrapped at the factory and should not be on any product.",
        "此标签已在工厂作废，不应出现在任何产品上。",
    ),
    "recalled": _filled(
        (
            "The brand has recalled this product: {reason}. Do not use it.",
            "The brand has recalled this product. Do not use it.",
        ),
        ("品牌方已召回本产品：{reason}。请勿使用。", "品牌方已召回本产品。请勿使用。"),
    ),
    "inactive": _filled(
        ("This code is no longer active: {state}.", "This code is no longer active."),
        ("此码已失效：{state}。", "此码已失效。"),
    ),
    "expired": _filled(
        ("This product expired on {expiry}.", "This product is past its expiry date."),
        ("本产品已于{expiry}过期。", "本产品已超过有效期。"),
    ),
    "pin_reused": _filled(
        (
            "This hidden PIN was already entered on {first_used_at}: the code has most "
            "likely been copied.",
            "This hidden PIN was already entered before: the code has most likely been copied.",
        ),
        (
            "此隐藏验证码已于{first_used_at}被输入过，此码很可能已被复制。",
            "此隐藏验证码此前已被输入过，此码很可能已被复制。",
        ),
    ),
    "pin_wrong": _fixed(
        "The hidden PIN you entered is not correct. Check it and try again.",
        "您输入的隐藏验证码不正确，请核对后重试。",
    ),
    "pin_confirmed": _fixed(
        "Hidden PIN confirmed: you are the first to open this genuine pack.",
        "隐藏验证码验证通过：您是此正品包装的首位开启者。",
    ),
    "too_many_sessions": _filled(
        (
            "This code has been checked on {sessions} different phones or browsers, more "
            "than the {limit} we expect for one pack: copies may be in circulation.",
            "This code has been checked on unusually many phones or browsers: copies may be "
            "in circulation.",
        ),
        (
            "此码已在{sessions}个不同的手机或浏览器上被查验，超过正常上限（{limit}个），"
            "市面上可能存在复制品。",
            "此码被查验的手机或浏览器数量异常，市面上可能存在复制品。",
        ),
    ),
    "impossible_travel": _filled(
        (
            "This code was scanned {km} km from here only {minutes} minutes earlier, too far "
            "to travel in that time: another pack probably carries a copy.",
            "This code was scanned far from here shortly before: another pack probably "
            "carries a copy.",
        ),
        (
            "此码在{minutes}分钟前于距此{km}公里处被扫描过，短时间内不可能到达，"
            "很可能另有包装使用了复制码。",
            "此码不久前在很远的地方被扫描过，很可能另有包装使用了复制码。",
        ),
    ),
    "diverted": _filled(
        (
            "This product is meant for sale in {market} but was scanned in {region}.",
            "This product was scanned outside the market it is meant for.",
        ),
        (
            "本产品指定销售地区为{market}，但在{region}被扫描（疑似窜货）。",
            "本产品在指定销售地区以外被扫描（疑似窜货）。",
        ),
    ),
    "seen_before": _filled(
        (
            "First checked on {first_at} in {first_region}.",
            "First checked on {first_at}.",
            "This code has been checked before.",
        ),
        (
            "首次查验：{first_at}，地区：{first_region}。",
            "首次查验：{first_at}。",
            "此码此前已被查验过。",
        ),
    ),
}

REASON_CODES = tuple(_REASONS)

_GENERIC = {
    EN: "Another check flagged this scan.",
    ZH: "另一项检查提示此次扫描存在异常。",
}

_STATES: dict[str, dict[str, str]] = {
    "destroyed": {EN: "destroyed", ZH: "已销毁"},
    "stolen": {EN: "reported stolen", ZH: "已报失窃"},
    "locked": {EN: "locked by the brand", ZH: "已被品牌方锁定"},
    "sold": {EN: "already sold", ZH: "已售出"},
    "dispensed": {EN: "already dispensed", ZH: "已发药"},
    "sampled": {EN: "taken as a sample", ZH: "已作为样品抽取"},
    "exported": {EN: "exported to another market", ZH: "已出口至其他市场"},
    "decommissioned": {EN: "taken out of circulation", ZH: "已退出流通"},
    "allocated": {EN: "never activated", ZH: "从未激活"},
}


def reason_message(reason: Reason, locale: str) -> str:
    """The reason in words, its params filled in (dates and times in the reader's format).
    An unknown code gets a generic sentence; a missing param, the text that needs none."""
    loc = _locale(locale)
    texts = _REASONS.get(reason.code)
    if texts is None:
        return _GENERIC[loc]
    values = _shown_params(reason.params, loc)
    for text in texts[loc]:
        if all(values.get(name) for name in _param_names(text)):
            return text.format_map(values)
    return _GENERIC[loc]  # unreachable while every code's last text needs no param


@functools.cache  # the texts are this module's constants
def _param_names(text: str) -> frozenset[str]:
    return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


def _shown_params(params: Mapping[str, str], locale: str) -> dict[str, str]:
    shown = {key: str(value) for key, value in params.items()}
    if shown.get("state"):
        shown["state"] = _STATES.get(shown["state"], {}).get(locale, shown["state"])
    if shown.get("expiry"):
        shown["expiry"] = _date_param(shown["expiry"], locale)
    for key in ("first_region", "market", "region"):
        if shown.get(key):
            shown[key] = region_name(shown[key], locale)
    for key in ("first_used_at", "first_at"):  # another consumer's check: its day only
        if shown.get(key):
            shown[key] = _day_param(shown[key], locale)
    return shown


def _date_param(text: str, locale: str) -> str:
    try:
        return format_date(date.fromisoformat(text), locale)
    except ValueError:
        return text


def _day_param(text: str, locale: str) -> str:
    try:
        return format_date(day_of(datetime.fromisoformat(text), locale), locale)
    except ValueError:
        return ""  # never echo a value we could not read


# ------------------------------------------------------------------------- dates and labels

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_date(value: date, locale: str) -> str:
    """``31 Dec 2030`` / ``2030年12月31日``."""
    if _locale(locale) == ZH:
        return f"{value.year}年{value.month}月{value.day}日"
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


def format_datetime(value: datetime, locale: str) -> str:
    """``31 Dec 2030, 14:05 UTC`` / ``2030年12月31日 22:05（北京时间）``. A naive time is
    taken as UTC."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if _locale(locale) == ZH:
        local = aware.astimezone(_BEIJING)
        return f"{format_date(local.date(), ZH)} {local:%H:%M}（北京时间）"
    utc = aware.astimezone(UTC)
    return f"{format_date(utc.date(), EN)}, {utc:%H:%M} UTC"


_LABELS: dict[str, dict[str, str]] = {
    EN: {
        "page_title": "Product check",
        "product": "Product",
        "name": "Name",
        "brand": "Brand",
        "gtin": "GTIN",
        "lot": "Lot",
        "serial": "Serial number",
        "expiry": "Expiry date",
        "production_date": "Production date",
        "history": "Checks of this code",
        "first_verified": "First checked",
        "first_region": "First checked in",
        "session_count": "Phones or browsers that checked it",
        "verification_id": "Check reference",
        "verified_at": "Checked at",
        "reasons": "Why",
        "risk": "Risk score",
        "pin_heading": "Hidden PIN",
        "pin_help": "Scratch off or reveal the hidden PIN on the pack and enter it here. "
        "Only the first person to enter it gets a confirmation.",
        "pin_label": "PIN",
        "pin_submit": "Confirm PIN",
        "pin_confirmed": "Hidden PIN confirmed.",
        "confirmed_title": "Genuine, first opening confirmed",
        "confirmed_advice": "You are the first to enter this pack's hidden PIN: nobody opened "
        "and checked it before you. Anyone who enters the same PIN later is told the code was "
        "copied.",
        "share_location": "Add my location (optional, helps catch copies)",
        "location_added": "Location added.",
        "location_failed": "Location not available; you can continue without it.",
        "check_again_here": "Check again with my location",
        "degraded": "Some checks are temporarily unavailable; this answer may be incomplete.",
        "other_language": "中文",
        "skip_to_content": "Skip to the result",
        "error_bad_link": "This link is not a valid product code",
        "error_bad_link_help": "The link may be damaged or incomplete. Scan the code on the "
        "pack again; if this page stays, the code may not be genuine.",
        "error_detail": "Details",
        "error_bad_input": "Please check what you entered",
        "error_bad_input_help": "Part of the request could not be used. Go back and try again.",
        "error_not_found": "Page not found",
        "error_not_found_help": "There is nothing at this address. Scan the code on the pack.",
        "error_method": "Request not supported",
        "error_method_help": "This address does not take that kind of request.",
        "error_rate": "Too many checks",
        "error_rate_help": "Too many checks came from your network in a short time. "
        "Wait a minute and try again.",
        "error_too_large": "Request too large",
        "error_too_large_help": "The form sent more data than a PIN needs.",
        "error_unavailable": "Service temporarily unavailable",
        "error_unavailable_help": "We cannot check codes right now. Try again in a minute.",
        "error_internal": "Something went wrong",
        "error_internal_help": "We could not check this code. Try again in a minute.",
        "home_title": "Check a product",
        "home_help": "Scan the QR code on the pack with your phone camera to check it.",
        "footer": "Checked by Sealmark for the brand.",
        "scan_title": "Check a photo of the label",
        "scan_help": "Take a sharp photo of the QR code, straight on and in good light, and send"
        " it. We check the code and the brand's hidden mark printed inside it.",
        "scan_label": "Photo of the QR code (PNG, JPEG or WebP, up to 6 MB)",
        "scan_submit": "Check the photo",
        "covert_heading": "Hidden mark in the QR code",
        "covert_present": "Present: this QR code was printed from the brand's own label.",
        "covert_absent": "Not found: this QR code was not printed from a marked label of the"
        " brand. It may have been made from a copied list of codes.",
        "covert_unreadable": "Could not be read from this photo. Try a sharper, closer photo.",
        "covert_not_checked": "Not checked: this is not a marked code of a Sealmark brand.",
        "covert_note": "The mark shows a code re-made from its text. A photocopy or a photo of a"
        " real label carries it too: the hidden PIN and the scan history catch those.",
        "covert_score": "Mark score",
        "error_image_too_large": "Photo too large",
        "error_image_too_large_help": "Send a photo of at most 6 MB.",
    },
    ZH: {
        "page_title": "产品查验",
        "product": "产品信息",
        "name": "名称",
        "brand": "品牌",
        "gtin": "商品条码（GTIN）",
        "lot": "批号",
        "serial": "序列号",
        "expiry": "有效期至",
        "production_date": "生产日期",
        "history": "查验记录",
        "first_verified": "首次查验时间",
        "first_region": "首次查验地区",
        "session_count": "查验过的手机或浏览器数",
        "verification_id": "查验编号",
        "verified_at": "查验时间",
        "reasons": "判定依据",
        "risk": "风险评分",
        "pin_heading": "隐藏验证码",
        "pin_help": "刮开或显现包装上的隐藏验证码，并在此输入。只有第一位输入者会得到确认。",
        "pin_label": "验证码",
        "pin_submit": "确认验证码",
        "pin_confirmed": "隐藏验证码已确认。",
        "confirmed_title": "正品，首次开启已确认",
        "confirmed_advice": "您是第一位输入此包装隐藏验证码的人，此前无人开启查验过此包装。"
        "此后任何人再输入同一验证码，都会被提示此码已被复制。",
        "share_location": "添加我的位置（可选，有助于识别复制码）",
        "location_added": "已添加位置。",
        "location_failed": "无法获取位置，您可以不提供位置继续操作。",
        "check_again_here": "使用我的位置重新查验",
        "degraded": "部分检查暂时不可用，本次结果可能不完整。",
        "other_language": "English",
        "skip_to_content": "跳到查验结果",
        "error_bad_link": "此链接不是有效的产品码",
        "error_bad_link_help": "链接可能已损坏或不完整。请重新扫描包装上的码；"
        "如仍显示此页面，此码可能不是正品码。",
        "error_detail": "详细信息",
        "error_bad_input": "请检查您输入的内容",
        "error_bad_input_help": "部分请求内容无法使用，请返回重试。",
        "error_not_found": "页面不存在",
        "error_not_found_help": "此地址没有内容，请扫描包装上的码。",
        "error_method": "不支持此请求",
        "error_method_help": "此地址不接受这种请求方式。",
        "error_rate": "查验过于频繁",
        "error_rate_help": "短时间内来自您网络的查验次数过多，请稍候一分钟再试。",
        "error_too_large": "请求内容过大",
        "error_too_large_help": "提交的数据超出了验证码所需的长度。",
        "error_unavailable": "服务暂时不可用",
        "error_unavailable_help": "目前无法查验，请稍候一分钟再试。",
        "error_internal": "出现错误",
        "error_internal_help": "暂时无法查验此码，请稍候一分钟再试。",
        "home_title": "产品查验",
        "home_help": "请用手机相机扫描包装上的二维码进行查验。",
        "footer": "由 Sealmark 代表品牌方提供查验。",
        "scan_title": "上传标签照片查验",
        "scan_help": "请在光线充足处正对二维码拍摄一张清晰的照片并上传。"
        "我们会查验此码以及印在码内的品牌隐藏标记。",
        "scan_label": "二维码照片（PNG、JPEG 或 WebP，不超过 6 MB）",
        "scan_submit": "查验照片",
        "covert_heading": "二维码内的隐藏标记",
        "covert_present": "存在：此二维码印自品牌方的正版标签。",
        "covert_absent": "未发现：此二维码并非印自品牌方带标记的标签，"
        "可能是根据泄露的码清单重新生成的。",
        "covert_unreadable": "无法从这张照片读取，请靠近一些并拍得更清晰。",
        "covert_not_checked": "未查验：这不是 Sealmark 品牌带标记的码。",
        "covert_note": "此标记可识别根据码文本重新生成的二维码。"
        "对正版标签的复印或翻拍同样带有标记，这类复制由隐藏验证码和查验记录识别。",
        "covert_score": "标记得分",
        "error_image_too_large": "照片过大",
        "error_image_too_large_help": "请上传不超过 6 MB 的照片。",
    },
}


def labels(locale: str) -> Mapping[str, str]:
    """The page's fixed wording (field names, buttons, error pages) in ``locale``."""
    return _LABELS[_locale(locale)]


# ------------------------------------------------------------------- the page's pictures

_MEDIA_ALT = {
    "logo": {EN: "{name} logo", ZH: "{name}标志"},
    "image": {EN: "Photo of {name}", ZH: "{name}产品图片"},
}
_MEDIA_ALT_UNNAMED = {
    "logo": {EN: "Brand logo", ZH: "品牌标志"},
    "image": {EN: "Product photo", ZH: "产品图片"},
}


def media_alt(kind: str, name: str, locale: str) -> str:
    """The alt text of the brand's logo or the product's image when the brand gave none."""
    loc = _locale(locale)
    if not name:
        return _MEDIA_ALT_UNNAMED[kind][loc]
    return _MEDIA_ALT[kind][loc].format(name=name)


# ---------------------------------------------------------------- the scan history, told

# What a consumer reads about the code's earlier checks. Only day and region of others'
# checks are ever shown: never their time of day, place or phone.
_SUMMARY: dict[str, dict[str, str]] = {
    "first_now": {
        EN: "This is the first check of this code.",
        ZH: "这是此码的首次查验。",
    },
    "first_on_in": {
        EN: "First checked on {day} in {place}.",
        ZH: "首次查验于{day}，地区：{place}。",
    },
    "first_on": {EN: "First checked on {day}.", ZH: "首次查验于{day}。"},
    "sessions_one": {
        EN: "Every check so far came from one phone or browser.",
        ZH: "迄今所有查验均来自同一部手机或浏览器。",
    },
    "sessions_many": {
        EN: "Checked from {sessions} different phones or browsers so far.",
        ZH: "迄今已有{sessions}部不同的手机或浏览器查验过此码。",
    },
    "means_seen": {
        EN: "A few checks are normal: the shop, a family member or you yourself earlier. If "
        "you have just opened a sealed pack and nobody else should have checked it, treat "
        "it with care and enter the hidden PIN if the pack has one.",
        ZH: "少量查验属正常情况：可能是商家、家人或您本人此前查验过。"
        "如果您刚打开密封包装、此前不应有人查验过，请谨慎对待；如包装上有隐藏验证码，请输入验证。",
    },
    "means_many": {
        EN: "One pack is rarely checked on this many phones: the code has probably been "
        "copied onto other packs.",
        ZH: "一个包装很少会被这么多手机查验：此码很可能已被复制到其他包装上。",
    },
    "means_elsewhere": {
        EN: "It was first checked in another region than yours. Products do travel, but if "
        "this pack was sold to you as new, ask the shop where it came from.",
        ZH: "此码首次查验的地区与您所在地区不同。产品可能经过流转，"
        "但如果商家说这是全新产品，请向商家询问其来源。",
    },
}


def history_summary(
    first_on: date | None,
    place: str,
    sessions: int,
    *,
    too_many: bool,
    elsewhere: bool,
    locale: str,
    suspect: bool = False,
) -> list[str]:
    """The scan history in a few sentences: when and where the code was first checked (day
    and region only), on how many phones or browsers, and what that means. ``first_on``
    None: this scan is the first. ``sessions`` counts this scan's session; ``too_many``: the
    session rule flagged them (copies); ``elsewhere``: first checked in another region than
    this scan's; ``suspect``: the verdict is a suspected copy for another reason (a reused
    PIN), so a few checks are not called normal."""
    loc = _locale(locale)
    if first_on is None:
        return [_SUMMARY["first_now"][loc]]
    day = format_date(first_on, loc)
    first = "first_on_in" if place else "first_on"
    out = [_SUMMARY[first][loc].format(day=day, place=place)]
    if sessions <= 1:
        out.append(_SUMMARY["sessions_one"][loc])
    else:
        out.append(_SUMMARY["sessions_many"][loc].format(sessions=sessions))
    if too_many:
        out.append(_SUMMARY["means_many"][loc])
    elif sessions > 1 and not suspect:
        out.append(_SUMMARY["means_seen"][loc])
    if elsewhere:
        out.append(_SUMMARY["means_elsewhere"][loc])
    return out


def day_of(value: datetime, locale: str) -> date:
    """The calendar day of ``value`` as the reader counts it (UTC in English, Beijing time
    in Chinese, as :func:`format_datetime`)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(_BEIJING if _locale(locale) == ZH else UTC).date()
