"""Money: integer micro-dollars inside, decimal strings at the edges, one rounding rule."""

from __future__ import annotations

import pytest

from tollgate.gateway.money import (
    format_usd,
    parse_usd,
    per_million_to_picos_per_token,
    picos_to_micros,
)


@pytest.mark.parametrize(("text", "micros"), [
    ("0", 0),
    ("0.000001", 1),
    ("1", 1_000_000),
    ("12.50", 12_500_000),
    ("12.345678", 12_345_678),
    ("12000", 12_000_000_000),
    (" 3.5 ", 3_500_000),
])
def test_a_decimal_string_parses_to_exact_micro_dollars(text: str, micros: int):
    assert parse_usd(text) == micros


@pytest.mark.parametrize(("micros", "text"), [
    (0, "0.00"),
    (1, "0.000001"),
    (10, "0.00001"),
    (1_500_000, "1.50"),
    (12_000_000, "12.00"),
    (12_345_600, "12.3456"),
    (12_345_678, "12.345678"),
    (12_000_000_000, "12000.00"),
])
def test_micro_dollars_format_with_at_least_two_decimals_and_no_trailing_noise(
    micros: int, text: str
):
    assert format_usd(micros) == text


@pytest.mark.parametrize("micros", [0, 1, 9, 10, 99_999, 999_999, 1_000_000, 1_000_001,
                                    12_345_678, 10**15 + 7, 2**63 - 1])
def test_formatting_then_parsing_gives_back_the_same_amount(micros: int):
    assert parse_usd(format_usd(micros)) == micros


@pytest.mark.parametrize("text", ["0.00", "0.000001", "12.3456", "12000.00", "8123.41"])
def test_a_canonical_string_survives_parsing_then_formatting(text: str):
    assert format_usd(parse_usd(text)) == text


def test_format_spells_a_negative_amount_with_a_leading_minus():
    assert format_usd(-1_500_000) == "-1.50"


def test_format_never_uses_exponent_notation():
    assert "e" not in format_usd(1).lower()
    assert "e" not in format_usd(10**18).lower()


@pytest.mark.parametrize("text", ["0.0000001", "1.1234567", "12.0000005"])
def test_more_than_six_decimal_places_is_refused(text: str):
    with pytest.raises(ValueError, match="more than 6 decimal places"):
        parse_usd(text)


@pytest.mark.parametrize("text", ["-1", "-0.01", "-12000"])
def test_a_negative_amount_is_refused(text: str):
    with pytest.raises(ValueError, match="must not be negative"):
        parse_usd(text)


@pytest.mark.parametrize("text", ["", "abc", "1,50", "$12", "NaN", "Infinity", "-Infinity"])
def test_text_that_is_not_a_finite_decimal_is_refused(text: str):
    with pytest.raises(ValueError):
        parse_usd(text)


@pytest.mark.parametrize("value", [12.5, 12, None])
def test_a_value_that_is_not_a_string_is_refused_so_no_float_touches_money(value: object):
    with pytest.raises(ValueError, match="decimal string"):
        parse_usd(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["1e999999", "9" * 30 + "e999990"],
                         ids=["huge-exponent", "long-mantissa-huge-exponent"])
def test_an_absurdly_large_amount_is_a_value_error_not_an_arithmetic_crash(text: str):
    """Config validation turns ValueError into a field error; any other exception escapes it."""
    with pytest.raises(ValueError):
        parse_usd(text)
    with pytest.raises(ValueError):
        per_million_to_picos_per_token(text)


@pytest.mark.parametrize(("price", "picos"), [
    ("0", 0),
    ("0.000001", 1),
    ("0.075", 75_000),
    ("0.15", 150_000),
    ("1.25", 1_250_000),
    ("2.50", 2_500_000),
    ("10.00", 10_000_000),
    ("75", 75_000_000),
])
def test_a_price_per_million_tokens_becomes_integer_pico_dollars_per_token(price: str, picos: int):
    assert per_million_to_picos_per_token(price) == picos


def test_a_price_finer_than_one_pico_dollar_per_token_is_refused():
    with pytest.raises(ValueError, match="more than 6 decimal places"):
        per_million_to_picos_per_token("0.0000001")


def test_a_negative_price_is_refused():
    with pytest.raises(ValueError, match="must not be negative"):
        per_million_to_picos_per_token("-0.50")


@pytest.mark.parametrize(("picos", "micros"), [
    (0, 0),
    (1, 0),
    (499_999, 0),
    (500_000, 1),
    (1_000_000, 1),
    (1_499_999, 1),
    (1_500_000, 2),
    (2_500_000, 3),
    (3_500_000, 4),
])
def test_pico_dollars_round_to_micro_dollars_half_up(picos: int, micros: int):
    """Half up, not half to even: 2.5 µ$ is 3 µ$, as 1.5 µ$ is 2 µ$."""
    assert picos_to_micros(picos) == micros


def test_a_negative_cost_cannot_be_rounded():
    with pytest.raises(ValueError, match="cannot be negative"):
        picos_to_micros(-1)
