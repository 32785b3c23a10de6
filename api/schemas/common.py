"""Field types and base models every resource's schemas share.

Request and response models (pydantic 2), shaped like Modern Treasury's Ledgers API.

Money is an integer number of minor units everywhere. Amount fields are strict: a float (even
1.0), a string, a boolean, zero or a negative number is a 422 before anything runs. Request
models forbid unknown fields, so a misspelt balance condition is an error, not silently dropped.

Durations (``hold_period``, ``rolling_reserve.period``) are ISO 8601 durations of days, hours,
minutes and whole seconds (``P7D``, ``PT5S``, ``P1DT12H``, ``P2W``). Months and years are refused:
they have no fixed length, and a hold must end at a known instant.
"""

from __future__ import annotations

import enum
import re
import uuid
from datetime import timedelta
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from api.modes import request_livemode
from ledger_core.checks import MAX_AMOUNT

T = TypeVar("T")


def _storable_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded as UTF-8.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Text = Annotated[str, AfterValidator(_storable_text)]
Name = Annotated[Text, Field(min_length=1, max_length=255)]
Description = Annotated[Text, Field(max_length=5000)]
ExternalId = Annotated[Text, Field(min_length=1, max_length=255)]
MetadataKey = Annotated[Text, Field(min_length=1, max_length=255)]
MetadataValue = Annotated[Text, Field(max_length=5000)]
Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    Field(max_length=100, description="String keys and string values, as in Modern Treasury."),
]
Amount = Annotated[
    int,
    Field(
        strict=True,
        gt=0,
        le=MAX_AMOUNT,
        description="A positive integer number of minor units (cents for USD).",
    ),
]
SignedAmount = Annotated[int, Field(strict=True, ge=-MAX_AMOUNT, le=MAX_AMOUNT)]
LockVersion = Annotated[int, Field(strict=True, ge=0, le=MAX_AMOUNT)]


class RequestModel(BaseModel):
    """The base of every request body model (nested ones too): an unknown field is a 422
    ``validation_error`` naming it in ``unknown_parameters`` (``api.problems``), and the OpenAPI
    schema says ``additionalProperties: false``. Free-form ``dict`` fields (metadata) still take
    any keys. Response models derive from ``ResponseModel``."""

    model_config = ConfigDict(extra="forbid")


class ResponseModel(BaseModel):
    """The base of response models: built from a domain object by attribute,
    ``Model.model_validate(obj)``. A field named otherwise in the domain says so with
    ``validation_alias`` (its own name is accepted too); a field the object lacks is derived in
    the model, by ``from_domain``."""

    model_config = ConfigDict(from_attributes=True, validate_by_name=True, validate_by_alias=True)

    @model_validator(mode="before")
    @classmethod
    def _read_domain_object(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict | BaseModel):
            return data
        return cls.from_domain(data, info.context or {})

    @classmethod
    def from_domain(cls, data: Any, context: dict[str, Any]) -> Any:
        """What the model reads its fields from, given the domain object ``data``: the object
        itself, or an ``Attributes`` view of it with what it lacks. ``context`` is the one given
        to ``model_validate``."""
        return data


class ObjectOut(ResponseModel):
    """The base of every object a route answers with (the models of its 2xx responses and of
    their lists' items): each says whether it is a live or a test-mode object (``api.modes``).
    The object's own flag where the domain object has one (a ledger, an account, a seller, a
    wallet, an event, a webhook endpoint or delivery), else its root's: the request's mode, since
    a key sees only objects of its own mode."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    livemode: bool = Field(
        default_factory=request_livemode,
        description="true: a live object (live keys); false: a test-mode object (test keys).",
    )


class Attributes:
    """An object seen through others: an attribute is looked up in ``extra``, then in each
    source in turn. What a response model reads when the domain object lacks a field the API
    shows (a workflow id, a balance in the account's currency)."""

    __slots__ = ("_extra", "_sources")

    def __init__(self, *sources: object, **extra: Any) -> None:
        self._sources = sources
        self._extra = extra

    def __getattr__(self, name: str) -> Any:
        if name in self._extra:
            return self._extra[name]
        for source in self._sources:
            if hasattr(source, name):
                return getattr(source, name)
        raise AttributeError(name)


def as_text(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


# A text field filled from a domain UUID (an id shown as a string) or a string enum.
AsText = Annotated[str, BeforeValidator(as_text)]


class ListResponse(BaseModel, Generic[T]):
    """A page of a list. ``next_cursor`` goes into ``after_cursor`` for the next page (also sent
    as the ``X-After-Cursor`` header); null on the last page."""

    items: list[T]
    next_cursor: str | None


_DURATION = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)
_CALENDAR = re.compile(r"^P(?:\d+Y)|^P(?:\d+Y)?\d+M")


def parse_duration(value: object) -> timedelta:
    """An ISO 8601 duration without months or years, as a ``timedelta``."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 duration string, e.g. P7D or PT12H")
    text = value.strip().upper()
    if _CALENDAR.match(text):
        raise ValueError(
            "months and years have no fixed length; give days, hours, minutes or seconds "
            "(e.g. P30D)"
        )
    match = _DURATION.match(text)
    if match is None or text.endswith("T"):
        raise ValueError(
            f"{value!r} is not an ISO 8601 duration of weeks, days, hours, minutes and whole "
            "seconds (e.g. P7D, PT5S, P1DT12H)"
        )
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    try:
        return timedelta(**parts)
    except OverflowError:
        raise ValueError("the duration is too long") from None


def format_duration(value: timedelta) -> str:
    """The ISO 8601 form of a whole-seconds, non-negative ``timedelta``: P7D, PT5S, P1DT12H."""
    total = int(value.total_seconds())
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    date = f"{days}D" if days else ""
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    if not date and not time:
        return "PT0S"
    return "P" + date + (f"T{time}" if time else "")


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "format": "duration", "examples": ["P7D", "PT5S"]}),
]
# A plain str: pydantic leaves ``pattern`` out of the JSON schema of a type with an
# AfterValidator (``Text``), so the schema would not say which ids are refused. The pattern
# already keeps out NUL and anything but ASCII.
SellerId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="Chosen by the platform: letters, digits and _ . : - (1-128 characters).",
    ),
]
OrderId = Annotated[Text, Field(min_length=1, max_length=200)]
Fee = Annotated[int, Field(strict=True, ge=0, le=MAX_AMOUNT)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. USD")]
