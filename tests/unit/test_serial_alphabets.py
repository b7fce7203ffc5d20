"""Serial alphabets (issue 25): the product's alphabet is resolved to its symbols in one type,
serials are drawn from those symbols and nothing else, uniformly, and the exposure of the
serials drawn from the letters of the alphabet's name is stated exactly."""

from __future__ import annotations

import os
import random

import pytest

from issuer.domain.serials import draw_serials
from sealmark.errors import InvalidArgument
from sealmark.tenancy.alphabets import (
    SERIAL_ALPHABETS,
    SerialAlphabet,
    alphabet_named,
    legacy_exposure,
)
from sealmark.tenancy.model import Product
from tests.support.uniformity import (
    ALPHA,
    assert_uniform,
    chi_square,
    chi_square_critical,
    chi_square_survival,
)

# Regression vector of issue 25, as found from outside: the letters each alphabet's serials
# were drawn from while minting was handed the alphabet's name, and the size of the space
# those letters reach at length 12 (the report said "at most 1.4e10 / 2.8e11 / 2.8e11").
ISSUE_25_VECTOR = {
    "numeric": ("ceimnru", 7**12, 13_841_287_201),
    "alnum-safe": ("-aeflmnsu", 9**12, 282_429_536_481),
    "upper-alnum": ("-aelmnpru", 9**12, 282_429_536_481),
}


@pytest.mark.parametrize("name", sorted(SERIAL_ALPHABETS))
def test_issue_25_vector(name: str) -> None:
    letters, space, literal = ISSUE_25_VECTOR[name]
    exposure = legacy_exposure(name, 12, 1_000)
    assert exposure.symbols == letters
    assert exposure.reachable_space == space == literal
    assert exposure.uniform_guess_probability == pytest.approx(1_000 / literal)


def test_the_name_of_an_alphabet_is_refused_where_symbols_belong() -> None:
    """The defect of issue 25 was ``draw_serials("numeric", ...)``: it must not run."""
    with pytest.raises(TypeError, match="SerialAlphabet"):
        draw_serials("numeric", 12, 10, os.urandom)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="SerialAlphabet"):
        draw_serials("0123456789", 12, 10, os.urandom)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(SERIAL_ALPHABETS))
def test_serials_use_only_the_alphabets_symbols_uniformly(name: str) -> None:
    alphabet = SERIAL_ALPHABETS[name]
    serials = draw_serials(alphabet, 12, 4_000, random.Random(name).randbytes)
    assert all(len(s) == 12 and alphabet.admits(s) for s in serials)
    assert_uniform(serials, alphabet.symbols)
    # Every position too: a draw that biased one position would hide in the pooled count.
    for position in range(12):
        assert_uniform([s[position] for s in serials], alphabet.symbols)


def test_the_uniformity_test_catches_modulo_bias() -> None:
    """Without rejection sampling, 256 % 56 = 32 symbols of alnum-safe are 25 % likelier:
    the chi-square test must see it (so the test above can fail)."""
    symbols = SERIAL_ALPHABETS["alnum-safe"].symbols
    rng = random.Random(3)
    biased = ["".join(symbols[b % 56] for b in rng.randbytes(12)) for _ in range(4_000)]
    statistic, critical = chi_square(biased, symbols)
    assert statistic > critical


def test_the_uniformity_test_catches_the_issue_25_draw() -> None:
    with pytest.raises(AssertionError, match="outside the alphabet"):
        chi_square(["rrrnnrnnemiu", "minenmiricmc"], SERIAL_ALPHABETS["numeric"].symbols)


def test_the_critical_value_matches_chi_square_tables() -> None:
    # Upper points of chi-square tables (NIST/SEMATECH e-Handbook 1.3.6.7.4): 0.05 and 0.001.
    assert chi_square_critical(1, 0.05) == pytest.approx(3.841, abs=1e-3)
    assert chi_square_critical(9, 0.05) == pytest.approx(16.919, abs=1e-3)
    assert chi_square_critical(10, 0.001) == pytest.approx(29.588, abs=1e-3)
    assert chi_square_critical(35, 0.001) == pytest.approx(66.619, abs=1e-3)
    assert chi_square_survival(chi_square_critical(55), 55) == pytest.approx(ALPHA, rel=1e-9)


def test_product_resolves_its_alphabet_and_space() -> None:
    for name, alphabet in SERIAL_ALPHABETS.items():
        product = Product("acme", "09520123456788", "Tonic", serial_alphabet=name, serial_length=9)
        assert product.alphabet is alphabet
        assert product.serial_space == len(alphabet.symbols) ** 9
    assert Product("acme", "09520123456788", "T").serial_space == 10**12


def test_unknown_alphabet_names_the_field() -> None:
    with pytest.raises(InvalidArgument, match=r"Product\.serial_alphabet"):
        Product("acme", "09520123456788", "Tonic", serial_alphabet="hex")
    with pytest.raises(InvalidArgument, match="serial_alphabet"):
        alphabet_named("ceimnru")


def test_alphabets_refuse_repeats_and_symbols_outside_cset82() -> None:
    with pytest.raises(ValueError, match="repeat"):
        SerialAlphabet("x", "aab")
    with pytest.raises(ValueError, match="CSET 82"):
        SerialAlphabet("x", "ab#")
    with pytest.raises(ValueError, match="at least 2"):
        SerialAlphabet("x", "a")


def test_legacy_best_guess_accounts_for_repeated_letters() -> None:
    """``alnum-safe`` has two ``a`` of ten letters: the most likely legacy serial of length 12
    is ``aaaaaaaaaaaa``, with probability 0.2 ** 12 per serial issued."""
    exposure = legacy_exposure("alnum-safe", 12, 1)
    assert exposure.best_guess_probability == pytest.approx(0.2**12)
    many = legacy_exposure("alnum-safe", 12, 10**6)
    assert many.best_guess_probability == pytest.approx(1 - (1 - 0.2**12) ** 10**6)
    assert legacy_exposure("numeric", 12, 0).best_guess_probability == 0
    # All letters of "numeric" are distinct: the best guess is no better than the uniform one.
    numeric = legacy_exposure("numeric", 12, 50)
    assert numeric.best_guess_probability == pytest.approx(50 / 7**12, rel=1e-6)
