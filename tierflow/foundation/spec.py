"""The base of every declarative model: frozen pydantic whose errors are `SpecError`s.

Like `errors`, every room may import this module.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from tierflow.errors import SpecError


def spec_error(error: ValidationError, prefix: str = "") -> SpecError:
    """The first problem of a pydantic error, as a `SpecError` naming its field."""
    first = error.errors(include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"])
    field = ".".join(p for p in (prefix, location) if p) or prefix or "(spec)"
    return SpecError(field, str(first["msg"]).removeprefix("Value error, "))


class SpecModel(BaseModel):
    """Frozen, strict about unknown fields; invalid input raises `SpecError`.

    Errors are prefixed with the lower-cased class name (`price.input: …`) unless the
    class sets `spec_prefix`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    spec_prefix: ClassVar[str | None] = None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            prefix = type(self).spec_prefix
            raise spec_error(
                error, type(self).__name__.lower() if prefix is None else prefix
            ) from None
