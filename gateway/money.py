"""Exact money: integer micro-dollars inside, decimal strings at the edges.

Prices are kept as integer *pico-dollars per token* (a price of $2.50 per million tokens is
2.5 micro-dollars per token = 2_500_000 pico-dollars per token), so a request's cost is a sum of
integer products, rounded once — half up — to whole micro-dollars. No float ever touches money.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = [
    "MICROS_PER_USD",
    "PICOS_PER_MICRO",
    "Micros",
    "format_usd",
    "parse_usd",
    "per_million_to_picos_per_token",
    "picos_to_micros",
]

Micros = int
"""An amount of money in integer micro-dollars (1 USD = 1_000_000)."""

MICROS_PER_USD = 1_000_000
PICOS_PER_MICRO = 1_000_000


def _decimal(text: str, what: str) -> Decimal:
    if not isinstance(text, str):
        kind = type(text).__name__
        raise ValueError(f"{what} must be a decimal string such as '12.50', not {kind}")
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{what} must be a decimal string such as '12.50', got {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite decimal, got {text!r}")
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {text!r}")
    if value.adjusted() >= 13:
        raise ValueError(f"{what} is too large, got {text!r}")
    return value


def parse_usd(text: str) -> Micros:
    """'12.345678' → 12_345_678 micro-dollars; more than 6 decimal places is an error."""
    micros = _decimal(text, "amount in USD") * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise ValueError(f"amount in USD {text!r} has more than 6 decimal places")
    return int(micros)


def format_usd(micros: Micros) -> str:
    """12_345_600 → '12.3456'; always at least two decimal places, never exponent notation."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_USD)
    frac_text = f"{frac:06d}".rstrip("0")
    if len(frac_text) < 2:
        frac_text = frac_text.ljust(2, "0")
    return f"{sign}{whole}.{frac_text}"


def per_million_to_picos_per_token(text: str) -> int:
    """A catalog price in USD per million tokens → integer pico-dollars per token."""
    picos = _decimal(text, "price per million tokens")
    picos = picos * MICROS_PER_USD  # USD/M tokens == micro-USD/token; × 1e6 → pico-USD/token
    if picos != picos.to_integral_value():
        raise ValueError(f"price {text!r} has more than 6 decimal places per million tokens")
    return int(picos)


def picos_to_micros(picos: int) -> Micros:
    """Round a pico-dollar total to whole micro-dollars, half up (the one rounding rule)."""
    if picos < 0:
        raise ValueError("a cost cannot be negative")
    return (picos + PICOS_PER_MICRO // 2) // PICOS_PER_MICRO
