"""GS1 dates YYMMDD (AIs 11, 13, 15, 16, 17): century by the sliding window of GS1 General
Specifications 7.12, and day 00 meaning the last day of the month."""

from __future__ import annotations

import calendar
from datetime import date

from sealmark.errors import InvalidArgument


def parse_yymmdd(value: str, field: str, *, today: date) -> date:
    """The date ``value`` denotes, judged from ``today`` (injected: the domain never reads
    the clock). Raises InvalidArgument for anything but six digits forming a real date."""
    if len(value) != 6 or not value.isascii() or not value.isdigit():
        raise InvalidArgument(field, f"{value[:20]!r}: want YYMMDD")
    yy, month, day = int(value[:2]), int(value[2:4]), int(value[4:])
    current = today.year % 100
    century = today.year - current
    difference = yy - current
    if difference >= 51:
        century -= 100
    elif difference <= -50:
        century += 100
    year = century + yy
    if not 1 <= month <= 12:
        raise InvalidArgument(field, f"{value!r}: month {month:02d} does not exist")
    last = calendar.monthrange(year, month)[1]
    if day == 0:
        day = last
    if day > last:
        raise InvalidArgument(field, f"{value!r}: day {day:02d} does not exist in that month")
    return date(year, month, day)


def format_yymmdd(value: date) -> str:
    return value.strftime("%y%m%d")
