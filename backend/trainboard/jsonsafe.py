"""Text and free-form JSON that every database stores and returns exactly as sent.

PostgreSQL refuses NUL characters in text (a 500 if they reach it), SQLite keeps NaN and
Infinity only as `null` (a spec silently changed), and JSON has no NaN at all; a deeply nested
value overflows the recursion of every serializer on its way out. So user text may not hold
NUL, and free-form values (`params`) may hold finite numbers only, nested at most
MAX_JSON_DEPTH levels, with at most MAX_JSON_VALUES values in all.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

# Hyperparameter dicts are a few levels deep; 32 leaves room for any real config while every
# serializer's recursion (json, pydantic, SQLAlchemy) stays far from its limit (~1000 frames).
MAX_JSON_DEPTH = 32
# Values of every kind, counted together: generous for a config (a large one has a few
# hundred), while the 16 MiB body limit alone would let one spec hold millions.
MAX_JSON_VALUES = 10_000
# Stated in the OpenAPI schema, so generated clients and fuzzers know the rule.
NO_NUL_PATTERN = r"^[^\u0000]*$"
NUL_MESSAGE = "contains a NUL character (\\u0000), which cannot be stored"


def check_text(text: str) -> str:
    """`text`, unless it holds a NUL character."""
    if "\x00" in text:
        raise ValueError(f"text {NUL_MESSAGE}")
    return text


class NoNul:
    """`Annotated[str, Field(max_length=...), NoNul()]`: refuses NUL characters and says so in
    the JSON schema. It comes after the string's own constraints, which then keep pydantic's
    own messages ("at most 200 characters")."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(check_text, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(schema) | {"pattern": NO_NUL_PATTERN}


def _float_name(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def check_json(value: Any) -> Any:
    """`value`, unless somewhere inside it is a non-finite number, a NUL character, nesting
    deeper than MAX_JSON_DEPTH or more than MAX_JSON_VALUES values; the error gives the path."""
    # Iterative: the value may be nested far deeper than Python's recursion limit allows.
    pending: list[tuple[Any, str, int]] = [(value, "", 1)]
    seen = 0
    while pending:
        item, path, depth = pending.pop()
        seen += 1
        if seen > MAX_JSON_VALUES:
            raise ValueError(f"has more than {MAX_JSON_VALUES:,} values; keep it smaller")
        where = path or "the object"
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{where}: {_float_name(item)} is not a finite number")
        if isinstance(item, str) and "\x00" in item:
            raise ValueError(f"{where}: {NUL_MESSAGE}")
        if isinstance(item, dict | list) and depth > MAX_JSON_DEPTH:
            raise ValueError(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    raise ValueError(f"a key in {where} {NUL_MESSAGE}")
                pending.append((child, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(item, list):
            pending.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(check_json)]


def finite_or_null(value: Any) -> Any:
    """`value` (a summary we made) with every non-finite number as null: what SQLite would keep
    anyway, and what JSON can say."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_null(child) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(child) for child in value]
    return value
