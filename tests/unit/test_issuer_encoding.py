from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from issuer.domain.encoding import CodeFormatter, CompactFormatter
from sealmark.gs1 import CSET82, GS, GS1Code

cset = st.text(alphabet=sorted(CSET82), min_size=1, max_size=20)
signature = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    min_size=88,
    max_size=88,
)


@given(serial=cset, lot=cset, sig=signature, with_production=st.booleans())
def test_formatter_prints_exactly_what_gs1code_prints(
    serial: str, lot: str, sig: str, with_production: bool
) -> None:
    production = date(2026, 1, 15) if with_production else None
    formatter = CodeFormatter("09520123456788", lot, date(2030, 12, 31), production, "id.x.example")
    printed = formatter.print(serial, sig)
    code = GS1Code("09520123456788", serial, lot, date(2030, 12, 31), production, sig)
    assert printed.element_string == code.to_element_string()
    assert printed.digital_link == code.to_digital_link("id.x.example")
    assert printed.hri == code.to_hri()


mac_value = st.from_regex(r"\A[A-Za-z0-9_-]{2}[0-9]{20}\Z")


@given(serial=cset, mac=mac_value)
def test_compact_formatter_prints_exactly_what_gs1code_prints(serial: str, mac: str) -> None:
    printed = CompactFormatter("09520123456788", "id.x.example").print(serial, mac)
    code = GS1Code("09520123456788", serial, mac=mac)
    assert printed.element_string == code.to_element_string()
    assert printed.digital_link == code.to_digital_link("id.x.example")
    assert printed.hri == code.to_hri()
    assert printed.element_string.endswith(f"{GS}92{mac}")
    # The MAC is not for people to read: the HRI stops after the serial (which may itself
    # contain "(92)", a CSET 82 string).
    assert printed.hri == f"(01)09520123456788(21){serial}"
