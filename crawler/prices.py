"""Prices and estimates as sites print them -> Decimal amounts and ISO 4217 currency codes.

Numbers are read by `price-parser` (Zyte's library: currency symbols and codes, decimal
and thousands separators of every locale - `1.234,56 €`, `$1,234.56`, `CHF 1'200.50`,
`12 340 EUR` with a no-break or narrow no-break space). Around it, this module adds what an
auction needs and a shop parser does not:

- ranges: `1.200 – 1.500 €`, `£1,200-£1,500`, `800 to 1,200 USD` give a low and a high;
- no silent wrong number: a text that holds several numbers not forming a range
  (`Lot 12: 1.200 €` is read as 1200 only because the currency is next to that number),
  an abbreviated amount (`5k`), `0.500`, or `1.234` in a currency with three decimals
  (KWD, BHD, ...) gives no amount and a `problem` saying why.

    parse_amount("1.200 – 1.500 €")  -> Amount(low=1200, high=1500, currency="EUR")
    parse_amount("ca. 5k €")         -> Amount(None, None, "EUR", problem="abbreviated ...")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from price_parser import Price
from price_parser._currencies import CURRENCIES

# Symbols as auction sites write them; `$`, `kr`, `¥` alone name several currencies and
# are only accepted with a hint (the page's priceCurrency or currency field).
_SYMBOLS = {
    "€": "EUR", "£": "GBP", "US$": "USD", "U$S": "USD", "A$": "AUD", "AU$": "AUD",
    "C$": "CAD", "CA$": "CAD", "HK$": "HKD", "NZ$": "NZD", "S$": "SGD", "R$": "BRL",
    "MX$": "MXN", "NT$": "TWD", "CN¥": "CNY", "RMB": "CNY", "₹": "INR", "₽": "RUB",
    "руб.": "RUB", "руб": "RUB", "₩": "KRW", "₺": "TRY", "zł": "PLN", "Zł": "PLN",
    "Kč": "CZK", "Ft": "HUF", "lei": "RON", "Fr.": "CHF", "SFr.": "CHF", "฿": "THB",
    "₪": "ILS", "Rp": "IDR",
}
_AMBIGUOUS_SYMBOLS = {
    "$": ("USD", "CAD", "AUD", "NZD", "HKD", "SGD", "MXN"), "kr": ("SEK", "NOK", "DKK", "ISK"),
    "kr.": ("DKK", "ISK"), "¥": ("JPY", "CNY"), "￥": ("JPY", "CNY"),
}
_CODES = frozenset(code for code in CURRENCIES if len(code) == 3 and code.isalpha())
_THREE_DECIMALS = frozenset(code for code, info in CURRENCIES.items() if info["d"] == 3)

# A number as printed: digits with thousands groups (. , ' ’ and the spaces) and decimals.
_GROUP = "[.,'’ \u00a0\u202f\u2009]"
_NUMBER = re.compile(rf"\d+(?:{_GROUP}\d{{3}}(?!\d))*(?:[.,]\d+)?")
_ABBREVIATED = re.compile(r"\s?(?:k|m|mn|mio|mln|bn|e\d)\b", re.IGNORECASE)
_PERCENT = re.compile(r"\s?%")
_NOT_AMOUNTS = re.compile(
    r"\b\d{1,2}[./-]\d{1,2}[./-]\d{2,4}\b|\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}:\d{2}\b"
    r"|(?:\blot|\bno\.?|\bnr\.?|n°|nº|#)\s*\d+",
    re.IGNORECASE,
)
_WORDS = re.compile(r"\beuros?\b", re.IGNORECASE)
# Between the two ends of a range: a dash of any kind, or a word (`1,200 to 1,500`).
_RANGE = re.compile(
    r"\s*(?:[-\u2010-\u2015\u2212~]|\bto\b|\bbis\b|\bà\b|\ba\b|\btot\b)\s*", re.IGNORECASE
)


@dataclass(frozen=True)
class Amount:
    """What a price text says. `low == high` unless it was a range; both None when the
    text held no number, or when it could not be read unambiguously (then `problem`)."""

    low: Decimal | None
    high: Decimal | None
    currency: str | None  # ISO 4217 code when the text or the hint names one unambiguously
    problem: str | None = None
    currency_problem: str | None = None  # a currency written that names no single code

    @property
    def is_range(self) -> bool:
        return self.low is not None and self.high is not None and self.high != self.low


def currency_code(text: Any, hint: str | None = None) -> tuple[str | None, str | None]:
    """(ISO code, problem) for a currency as written: `EUR`, `eur`, `€`, `US$`, `Fr.`.

    A symbol shared by several currencies (`$`, `kr`, `¥`) takes the hint when the hint
    is one of them; otherwise the code is None and the problem names the symbol.
    """
    if text is None:
        return hint, None
    written = str(text).strip()
    if not written:
        return hint, None
    if written.upper() in _CODES:
        return written.upper(), None
    if written in _SYMBOLS:
        return _SYMBOLS[written], None
    if _WORDS.fullmatch(written):
        return "EUR", None
    if written in _AMBIGUOUS_SYMBOLS:
        if hint in _AMBIGUOUS_SYMBOLS[written]:
            return hint, None
        return hint if hint and hint not in _CODES else None, (
            f"{written!r} names several currencies ({', '.join(_AMBIGUOUS_SYMBOLS[written])})"
        )
    found = Price.fromstring(None, currency_hint=written).currency
    if found and found != written:
        return currency_code(found, hint)
    return None, f"{written!r} is not a currency artwatch knows"


def _number(value: Any) -> Decimal | None:
    """A number given as a number (JSON), not as text."""
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(value) if isinstance(value, int | Decimal) else Decimal(repr(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and number >= 0 else None


def _single(text: str, hint: str | None) -> tuple[Decimal | None, str | None, str | None]:
    """(amount, currency as written, problem) of one end of a price text."""
    currency = Price.fromstring(text, currency_hint=hint).currency or _word_currency(text)
    # Numbers that are not amounts: dates, times, lot numbers, percentages.
    amounts_only = _NOT_AMOUNTS.sub(" ", text)
    numbers = [m for m in _NUMBER.finditer(amounts_only)
               if not _PERCENT.match(amounts_only, m.end())]
    if not numbers:
        return None, currency, "no amount"
    if len(numbers) > 1:
        return None, currency, f"several numbers ({', '.join(m[0] for m in numbers)})"
    match = numbers[0]
    if amounts_only[: match.start()].rstrip().endswith(("-", "\u2212")):
        return None, currency, "a negative amount"
    if _ABBREVIATED.match(amounts_only, match.end()):
        return None, currency, "an abbreviated amount (k, m, Mio, ...)"
    digits = match[0]
    groups = re.split(_GROUP, digits)
    if len(groups) == 2 and len(groups[1]) == 3:
        if groups[0] == "0" or len(groups[0]) > 3:
            return None, currency, f"{digits!r}: three decimals or a thousands separator?"
        code = currency_code(currency, hint)[0] if currency else hint
        if code in _THREE_DECIMALS:
            return None, currency, (
                f"{digits!r} in {code}, a currency with three decimals: thousands or decimals?"
            )
    parsed = Price.fromstring(digits).amount
    if parsed is None or not parsed.is_finite() or parsed < 0:
        return None, currency, f"{digits!r} is not a number"
    return parsed, currency, None


def _word_currency(text: str) -> str | None:
    """A currency written as a word price-parser does not know (`2.500 Euro`)."""
    match = _WORDS.search(text)
    return match[0] if match else None


def parse_amount(value: Any, currency_hint: str | None = None) -> Amount:
    """Read a price, an estimate or a range from a number or a text.

    `currency_hint` is an ISO code the page gave elsewhere (schema.org priceCurrency, a
    currency field): it decides `$`/`kr`/`¥` and the decimals of three-decimal currencies.
    Numbers given as numbers (JSON) are taken as they are. Never raises.
    """
    if value is None or value == "":
        return Amount(None, None, currency_hint)
    if not isinstance(value, str):
        number = _number(value)
        problem = None if number is not None else f"{value!r} is not a price"
        return Amount(number, number, currency_hint, problem)
    text = " ".join(value.split())  # any run of whitespace (no-break spaces too) -> " "
    if not any(ch.isdigit() for ch in text):
        return Amount(None, None, currency_code(Price.fromstring(text).currency, currency_hint)[0])
    ends = _range_ends(text)
    amounts: list[Decimal] = []
    written: set[str] = set()
    for end in ends:
        amount, currency, problem = _single(end, currency_hint)
        if currency:
            written.add(currency)
        if problem:
            return Amount(None, None, currency_hint, f"{value.strip()!r}: {problem}")
        assert amount is not None
        amounts.append(amount)
    codes = {currency_code(c, currency_hint) for c in written}
    currency, currency_problem = currency_hint, None
    if len(codes) == 1:
        currency, currency_problem = next(iter(codes))
    elif len(codes) > 1:
        return Amount(None, None, currency_hint,
                      f"{value.strip()!r}: several currencies ({', '.join(sorted(written))})")
    if currency_hint and currency and currency != currency_hint:
        return Amount(None, None, currency_hint,
                      f"{value.strip()!r}: written in {currency}, the page says {currency_hint}")
    low, high = min(amounts), max(amounts)
    return Amount(low, high, currency, None, currency_problem)


def _range_ends(text: str) -> list[str]:
    """The two ends of a range (`1.200 – 1.500 €`), or the whole text as one end.

    A separator counts only between two numbers, so `€ 1.200,-` (German: no cents) and a
    leading minus are not ranges.
    """
    for separator in _RANGE.finditer(text):
        left, right = text[: separator.start()], text[separator.end():]
        if (re.search(r"\d\D{0,4}$", left) and not left.endswith(",")
                and re.match(r"^\D{0,4}\d", right)):
            return [left, right]
    return [text]


@dataclass
class LotPrices:
    """A lot's price fields as stored: Decimals, an ISO code, and what could not be read."""

    price: Decimal | None
    estimate_low: Decimal | None
    estimate_high: Decimal | None
    currency: str | None
    problems: list[str]  # "field: why" for each price field given but not read
    currency_problems: list[str]


def lot_prices(
    *, price: Any = None, estimate_low: Any = None, estimate_high: Any = None,
    estimate: Any = None, currency: Any = None,
) -> LotPrices:
    """Read a lot's price fields together, as a page gives them (text or numbers).

    `currency` (a code or symbol given on its own, e.g. schema.org priceCurrency) decides
    for the amounts; without it, the currency written in the amounts is used. A range
    given as `estimate` (or in `estimate_low` / `estimate_high`: each takes its own end)
    fills the estimate; a range given as the `price` fills the estimate when the page
    gave none, and is otherwise reported, never stored as a price.
    """
    code, currency_problem = currency_code(currency) if currency not in (None, "") else (
        None, None)
    currency_problems = [currency_problem] if currency_problem else []
    read = {
        name: parse_amount(value, code)
        for name, value in (("price", price), ("estimate_low", estimate_low),
                            ("estimate_high", estimate_high), ("estimate", estimate))
    }
    problems = [f"{name}: {amount.problem}" for name, amount in read.items() if amount.problem]
    low = read["estimate_low"].low if read["estimate_low"].low is not None \
        else read["estimate"].low
    high = read["estimate_high"].high if read["estimate_high"].high is not None \
        else read["estimate"].high
    given = read["price"]
    amount = given.low
    if given.is_range:
        amount = None
        if low is None and high is None:
            low, high = given.low, given.high
        else:
            problems.append(f"price: {price!r} is a range and the page gives an estimate too")
    if code is None:
        written = {a.currency for a in read.values() if a.currency}
        currency_problems += [a.currency_problem for a in read.values() if a.currency_problem]
        if len(written) == 1:
            code = next(iter(written))
        elif len(written) > 1:
            several = ", ".join(sorted(written))
            currency_problems.append(f"amounts in several currencies ({several})")
    return LotPrices(amount, low, high, code, problems, list(dict.fromkeys(currency_problems)))
