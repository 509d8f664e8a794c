"""The base of every config model: frozen, typed, and strict about unknown keys."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, model_validator
from pydantic_core import PydanticCustomError


def fail(message: str, hint: str = "") -> PydanticCustomError:
    """A validation error carrying the fix, read back by the config loader."""
    return PydanticCustomError("herald", message, {"hint": hint})


class HeraldModel(BaseModel):
    """Config models reject unknown keys by name, listing the keys that are allowed."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _only_known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = [field.alias or name for name, field in cls.model_fields.items()]
            unknown = [key for key in data if key not in allowed]
            if unknown:
                raise PydanticCustomError(
                    "unknown_keys", "unknown keys {unknown}", {"unknown": unknown, "allowed": allowed}
                )
        return data


def one_key_union(members: dict[str, type[BaseModel]], what: str) -> Any:
    """A union of models, each written in YAML as a mapping with one key that names it.

    Conditions (`when: {below: 1}`) and deliveries (`- email: {...}`) are both spelled this way.
    """

    def key_of(value: Any) -> str | None:
        if isinstance(value, dict) and len(value) == 1:
            (key,) = value
            return key if key in members else None
        for key, model in members.items():
            if isinstance(value, model):
                return key
        return None

    tagged = tuple(Annotated[model, Tag(key)] for key, model in members.items())
    return Annotated[
        Union[tagged],  # noqa: UP007 — built at run time from a registry
        Discriminator(
            key_of,
            custom_error_type="herald",
            custom_error_message=f"{what} must be a mapping with exactly one of: {', '.join(members)}",
            custom_error_context={"hint": f"write it as `{next(iter(members))}: ...`"},
        ),
    ]
