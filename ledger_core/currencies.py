"""ISO 4217: currency code format and minor-unit exponents."""

from __future__ import annotations

import re

from ledger_core.errors import ValidationFailed

_CODE = re.compile(r"^[A-Z]{3}$")

# Minor-unit exponents of ISO 4217 currencies: every code whose exponent is not 2, and the
# common ones that are. A code not listed defaults to 2 and accepts an explicit exponent.
_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED ARS AUD BDT BGN BRL CAD CHF CNY COP CZK DKK EGP EUR GBP GHS HKD HUF IDR ILS INR KES MAD "
    "MXN MYR NGN NOK NZD PEN PHP PKR PLN RON RUB SAR SEK SGD THB TRY TWD UAH USD ZAR"
)
_EXPONENTS: dict[str, int] = {
    code: exponent
    for codes, exponent in ((_ZERO, 0), (_TWO, 2), (_THREE, 3), (_FOUR, 4))
    for code in codes.split()
}


def resolve_exponent(currency: str, exponent: int | None) -> int:
    """The exponent of ``currency``; a given exponent must agree with ISO 4217 when it is known."""
    if not _CODE.match(currency):
        raise ValidationFailed(
            f"currency must be an ISO 4217 code of three capital letters, got {currency!r}",
            field="currency",
        )
    known = _EXPONENTS.get(currency, 2)
    if exponent is None:
        return known
    if not 0 <= exponent <= 18:
        raise ValidationFailed(
            "currency_exponent must be between 0 and 18", field="currency_exponent"
        )
    if currency in _EXPONENTS and exponent != known:
        raise ValidationFailed(
            f"{currency} has {known} decimal places in ISO 4217, not {exponent}",
            field="currency_exponent",
        )
    return exponent
