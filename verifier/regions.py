"""Region names for the consumer: ISO 3166-1 countries and ISO 3166-2 subdivisions (the
region an edge proxy geolocated a scan to, ``CN-SH``) in English and Simplified Chinese,
from pycountry's copy of the Debian iso-codes tables and their translations.

Only this coarse a place is ever shown of another consumer's scan. A code we cannot name is
shown as the code itself: the page never fails for a region."""

from __future__ import annotations

import functools
import gettext

import pycountry

# The last word of a Chinese subdivision's romanised name that says what kind it is
# ("Shanghai Shi" is the municipality Shanghai): left out in English.
_CN_KINDS = frozenset({"Shi", "Sheng", "Zizhiqu", "SAR", "Tebiexingzhengqu"})


@functools.cache
def _zh(domain: str) -> gettext.NullTranslations:
    return gettext.translation(domain, pycountry.LOCALES_DIR, languages=["zh_CN"], fallback=True)


@functools.cache
def region_name(code: str, locale: str) -> str:
    """``CN-SH`` → ``Shanghai, China`` / ``中国上海市``; ``DE`` → ``Germany`` / ``德国``."""
    chinese = locale.lower().startswith("zh")
    country_code, _, sub = code.upper().partition("-")
    country = pycountry.countries.get(alpha_2=country_code)
    if country is None:
        return code
    if chinese:
        country_name = _zh("iso3166-1").gettext(country.name)
    else:
        country_name = getattr(country, "common_name", None) or country.name
    if not sub:
        return country_name
    subdivision = pycountry.subdivisions.get(code=f"{country_code}-{sub}")  # type: ignore[no-untyped-call]
    if subdivision is None:
        return country_name
    if chinese:
        return f"{country_name}{_zh('iso3166-2').gettext(subdivision.name)}"
    words = subdivision.name.split()
    if country_code == "CN" and len(words) > 1 and words[-1] in _CN_KINDS:
        words = words[:-1]
    return f"{' '.join(words)}, {country_name}"
