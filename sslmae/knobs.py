"""Value types of params knobs (pydantic `Annotated` types), shared by the config schema and the
settings objects lower layers define themselves (`sslmae.augment.streams.StreamAugment`).

Strict: "3" is not 3 and 1 is not true; ints are accepted where a float is wanted.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field


class Section(BaseModel):
    """A params section: strict types, no unknown keys, no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_default=False)


def _integral(value: Any) -> Any:
    # JSON/protobuf transports (KFP) send 30 as 30.0; 30.5 stays a float and is refused
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _ordered(pair: list[float]) -> list[float]:
    if pair[0] > pair[1]:
        raise ValueError(f"must be [min, max] with min <= max, got {pair}")
    return pair


def _odd(value: int) -> int:
    if value % 2 != 1:
        raise ValueError(f"must be odd, got {value}")
    return value


Int = Annotated[int, BeforeValidator(_integral)]
OddInt = Annotated[Int, Field(ge=1), AfterValidator(_odd)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Range = Annotated[list[Annotated[float, Field(gt=0.0)]], Field(min_length=2, max_length=2), AfterValidator(_ordered)]
UnitRange = Annotated[list[Annotated[float, Field(gt=0.0, le=1.0)]], Field(min_length=2, max_length=2),
                      AfterValidator(_ordered)]
