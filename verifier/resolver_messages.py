"""The texts of the resolver's pages (product, lot, logistic unit, choices) in English and
Simplified Chinese, beside the shared labels of :mod:`verifier.messages`: a recalled or held
lot is said plainly, with what to do."""

from __future__ import annotations

from verifier import messages

TEXTS: dict[str, dict[str, str]] = {
    messages.EN: {
        "about": "About this product",
        "links": "More from the brand",
        "how": "This code names a product, not one item: only a code with a serial number "
        "on the pack can be checked as genuine.",
        "linkset": "All links (machine-readable linkset)",
        "product_ok": "No recall is in force for this product.",
        "product_recalled": "This product has been recalled. Do not use it.",
        "lot_ok": "No recall or hold is in force for this lot.",
        "lot_recalled": "This lot has been recalled. Do not use it.",
        "lot_held": "This lot is on hold by the brand while it is checked. Do not use it yet.",
        "lot_unknown": "The brand has no record of this lot. Check the lot number on the pack.",
        "sscc_heading": "Logistic unit label",
        "sscc_text": "This code (SSCC) identifies a case or pallet for shipping. It carries no "
        "information for consumers.",
        "recall_reason": "What the brand says",
        "hold_reason": "Why it is held",
        "sscc": "SSCC",
        "choose": "Choose a link",
        "choose_help": "Several links fit your request equally. Choose one.",
        "sscc_name": "Logistic unit",
    },
    messages.ZH: {
        "about": "产品信息",
        "links": "品牌提供的更多信息",
        "how": "此码标识的是产品而非单件商品：只有包装上带序列号的码才能验证真伪。",
        "linkset": "全部链接（机器可读的链接集）",
        "product_ok": "该产品目前没有召回。",
        "product_recalled": "该产品已被召回，请勿使用。",
        "lot_ok": "该批次目前没有召回或暂停。",
        "lot_recalled": "该批次已被召回，请勿使用。",
        "lot_held": "该批次正在接受品牌检查，已暂停放行，请暂勿使用。",
        "lot_unknown": "品牌没有该批次的记录，请核对包装上的批号。",
        "sscc_heading": "物流单元标签",
        "sscc_text": "此码（SSCC）标识用于运输的箱或托盘，不包含面向消费者的信息。",
        "recall_reason": "品牌说明",
        "hold_reason": "暂停原因",
        "sscc": "SSCC",
        "choose": "请选择链接",
        "choose_help": "有多个链接同样符合您的请求，请选择一个。",
        "sscc_name": "物流单元",
    },
}
