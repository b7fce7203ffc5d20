"""GS1 dates YYMMDD (AIs 11, 13, 15, 16, 17).

The century comes from the sliding window of GS1 General Specifications §7.12: a two-digit
year 51–99 years ahead of today's is last century, one 50–99 years behind is next century,
anything else is this century. Day 00 means the last day of the month. ``today`` is always
passed in: the domain never reads the clock.
"""

from __future__ import annotations

import calendar
from datetime import date

from sealmark.errors import InvalidArgument


def century_year(yy: int, today: date) -> int:
    """The four-digit year a two-digit year ``yy`` denotes, judged from ``today`` (§7.12)."""
    current = today.year % 100
    century = today.year - current
    difference = yy - current
    if difference >= 51:
        century -= 100
    elif difference <= -50:
        century += 100
    return century + yy


def yymmdd_problem(value: str) -> str | None:
    """Why ``value`` cannot be a GS1 date, or None. Clock-free: a 29 February is accepted
    when the two-digit year is a multiple of 4 (00 is a leap year in 2000, not in 2100; the
    century is only known given a date, see :func:`parse_yymmdd`)."""
    if len(value) != 6 or not value.isascii() or not value.isdigit():
        return f"{value[:20]!r}: want YYMMDD"
    yy, month, day = int(value[:2]), int(value[2:4]), int(value[4:])
    if not 1 <= month <= 12:
        return f"{value!r}: month {month:02d} does not exist"
    # 2000 stands in for any leap-year candidate.
    last = calendar.monthrange(2000 + yy, month)[1]
    if day > last:
        return f"{value!r}: day {day:02d} does not exist in month {month:02d}"
    return None


def parse_yymmdd(value: str, field: str, *, today: date) -> date:
    """The date ``value`` denotes, judged from ``today``; day 00 is the month's last day.

    Raises InvalidArgument naming ``field`` for anything but six digits forming a real date.
    """
    problem = yymmdd_problem(value)
    if problem:
        raise InvalidArgument(field, problem)
    year = century_year(int(value[:2]), today)
    month, day = int(value[2:4]), int(value[4:])
    last = calendar.monthrange(year, month)[1]
    if day > last:
        raise InvalidArgument(field, f"{value!r}: {year} has no day {day:02d} in month {month:02d}")
    return date(year, month, day or last)


def format_yymmdd(value: date, field: str = "date", *, today: date | None = None) -> str:
    """``value`` as YYMMDD. With ``today``, raises InvalidArgument naming ``field`` when the
    date lies outside the §7.12 window, where YYMMDD would be read back as another century."""
    text = value.strftime("%y%m%d")
    if today is not None and century_year(value.year % 100, today) != value.year:
        raise InvalidArgument(
            field, f"{value.isoformat()} is outside the GS1 date window around {today.year}"
        )
    return text
