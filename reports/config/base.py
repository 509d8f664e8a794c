"""The base of every config model: frozen, typed, and strict about unknown keys."""

from __future__ import annotations

import re
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, model_validator
from pydantic_core import PydanticCustomError

# Shapes of credentials: vendor token prefixes, a URL's user:password@, `password=...`.
_SECRET = re.compile(
    r"xox[a-z]-|\bgh[pousr]_|github_pat_|glpat-|\bsk[-_]|AKIA[0-9A-Z]{12}|AIza[\w-]{20}|-----BEGIN"
    r"|://[^/\s]*@|(?i:pass(word|wd)?|secret|token|api_?key)\s*[=:]"
)
_TOKEN_RUN = re.compile(r"[\w+/=-]{24,}")


def echoable(text: str) -> bool:
    """Whether text from the config may be quoted back in an error: short, one printable line,
    and not shaped like a token, a key or a URL with credentials (it may be a misplaced secret)."""
    return (
        len(text) <= 40
        and text.isprintable()
        and "'" not in text
        and not _SECRET.search(text)
        and not any(
            any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
            for run in _TOKEN_RUN.findall(text)
        )
    )


def quoted(value: Any) -> str | None:
    """`value` as an error may show it ('text', 12, 1e+308), or None when it must not be shown."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value) if abs(value) < 10**15 else None
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and echoable(value):
        return f"'{value}'"
    return None


def fail(message: str, hint: str = "") -> PydanticCustomError:
    """A validation error carrying the fix, read back by the config loader."""
    return PydanticCustomError("herald", message, {"hint": hint})


class HeraldModel(BaseModel):
    """Config models reject unknown keys by name, listing the keys that are allowed."""

    # Infinity and NaN are never meant: refuse them in every number field (they parse from `.inf`).
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

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
