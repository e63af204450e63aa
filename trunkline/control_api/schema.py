"""JSON Schema (2020-12 subset) used both to validate requests and to describe them.

The same schema dict goes into the OpenAPI document and into ``validate``, so
what the document promises is what the server enforces. Supported keywords:
``type`` (one name or a list, e.g. ``["string", "null"]``), ``enum``,
``pattern``, ``minLength``, ``maxLength``, ``minimum``, ``maximum``,
``format: uuid``, ``properties``, ``required``, ``additionalProperties: false``
and ``items``. ``x-error`` replaces the generic message when ``pattern`` fails.

Every failure is an ``ApiError(422)`` whose detail starts with the field path
(``provider_config.trunk_address: ...``); a missing required field reads
``<field> is required``.

``check_storable`` refuses, anywhere in a decoded JSON value, strings that no
storage backend can hold: NUL (PostgreSQL text cannot) and unpaired UTF-16
surrogates from ``\\ud800``-style escapes (they have no UTF-8 form).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from trunkline.control_api.errors import ApiError

Schema = dict[str, Any]

_TYPE_WORDS: Mapping[str, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


def _with(schema: Schema, **extra: Any) -> Schema:
    schema.update({k: v for k, v in extra.items() if v is not None})
    return schema


def string(
    *,
    enum: Sequence[str] | None = None,
    pattern: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    fmt: str | None = None,
    nullable: bool = False,
    description: str | None = None,
    error: str | None = None,
    example: str | None = None,
) -> Schema:
    schema: Schema = {"type": ["string", "null"] if nullable else "string"}
    if enum is not None:
        schema["enum"] = [*enum, None] if nullable else list(enum)
    return _with(
        schema,
        pattern=pattern,
        minLength=min_length,
        maxLength=max_length,
        format=fmt,
        description=description,
        example=example,
        **{"x-error": error},
    )


def integer(
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    default: int | None = None,
    description: str | None = None,
) -> Schema:
    return _with(
        {"type": "integer"},
        minimum=minimum,
        maximum=maximum,
        default=default,
        description=description,
    )


def boolean(*, nullable: bool = False, description: str | None = None) -> Schema:
    return _with({"type": ["boolean", "null"] if nullable else "boolean"}, description=description)


def obj(
    properties: Mapping[str, Schema],
    required: Sequence[str] = (),
    *,
    nullable: bool = False,
    description: str | None = None,
) -> Schema:
    """A closed object: unknown properties are rejected."""
    schema: Schema = {
        "type": ["object", "null"] if nullable else "object",
        "properties": dict(properties),
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return _with(schema, description=description)


def array(items: Schema, *, description: str | None = None) -> Schema:
    return _with({"type": "array", "items": items}, description=description)


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    """Compile with ECMA-262 anchoring: a final ``$`` matches only at the very end.

    (Python's ``$`` also matches before a trailing newline, which would let
    ``"+14155550100\n"`` pass an E.164 pattern.)
    """
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _types(schema: Schema) -> tuple[str, ...]:
    kind = schema.get("type")
    if kind is None:
        return ()
    return (kind,) if isinstance(kind, str) else tuple(kind)


def _is_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "null":
        return value is None
    raise ValueError(f"unsupported schema type {kind!r}")


UNSTORABLE = "must not contain NUL characters or unpaired UTF-16 surrogates"
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def is_storable(text: str) -> bool:
    """False when ``text`` holds NUL or a lone surrogate (nothing can store or encode it)."""
    return _UNSTORABLE_CHARACTER.search(text) is None


def replace_unstorable(text: str) -> str:
    """``text`` with each NUL and lone surrogate replaced by U+FFFD, for input that must be kept."""
    return _UNSTORABLE_CHARACTER.sub("\ufffd", text)


def check_storable(value: Any, where: str = "") -> None:
    """Raise ApiError(422) at the first string (key or value) that cannot be stored.

    Walks the value without recursion, so however deeply the decoder nested
    it the walk cannot overflow the stack.
    """
    pending: list[tuple[Any, str]] = [(value, where)]
    while pending:
        item, place = pending.pop()
        if isinstance(item, str):
            if not is_storable(item):
                raise _fail(place or "body", UNSTORABLE)
        elif isinstance(item, dict):
            prefix = f"{place}." if place else ""
            children: list[tuple[Any, str]] = []
            for key, child in item.items():
                if not is_storable(key):
                    raise _fail(place or "body", f"field names {UNSTORABLE}")
                children.append((child, prefix + key))
            pending.extend(reversed(children))
        elif isinstance(item, list):
            pending.extend((item[i], f"{place}[{i}]") for i in reversed(range(len(item))))


def _fail(where: str, message: str) -> ApiError:
    return ApiError(422, f"{where}: {message}" if where else message)


def validate(value: Any, schema: Schema, where: str = "") -> None:
    """Raise ApiError(422) naming the first place ``value`` breaks ``schema``."""
    kinds = _types(schema)
    if kinds and not any(_is_type(value, kind) for kind in kinds):
        raise _fail(where or "body", "expected " + " or ".join(_TYPE_WORDS[k] for k in kinds))
    if value is None:
        return
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(f'"{c}"' for c in schema["enum"] if c is not None)
        raise _fail(where, f"must be one of {choices}")
    if isinstance(value, str):
        _validate_string(value, schema, where)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise _fail(where, f"must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise _fail(where, f"must be at most {schema['maximum']}")
    elif isinstance(value, dict):
        _validate_object(value, schema, where)
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            validate(item, schema["items"], f"{where}[{index}]")


def _validate_string(value: str, schema: Schema, where: str) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        raise _fail(where, f"must be at least {schema['minLength']} characters")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise _fail(where, f"must be at most {schema['maxLength']} characters")
    if "pattern" in schema and _compiled(schema["pattern"]).search(value) is None:
        raise _fail(where, schema.get("x-error") or f"must match {schema['pattern']}")
    if schema.get("format") == "uuid" and not is_uuid(value):
        raise _fail(where, "must be a UUID")


def _validate_object(value: dict[str, Any], schema: Schema, where: str) -> None:
    properties: Mapping[str, Schema] = schema.get("properties", {})
    prefix = f"{where}." if where else ""
    for name in schema.get("required", ()):
        if name not in value:
            raise ApiError(422, f"{prefix}{name} is required")
    if schema.get("additionalProperties") is False:
        for name in value:
            if name not in properties:
                raise _fail(f"{prefix}{name}", "unknown field")
    for name, item in value.items():
        if name in properties:
            validate(item, properties[name], f"{prefix}{name}")


def is_uuid(value: str) -> bool:
    """True for the canonical 8-4-4-4-12 hex form (any case)."""
    if len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def canonical_uuid(value: str) -> str | None:
    """Lower-case canonical form of a UUID string, or None when it is not one."""
    return str(uuid.UUID(value)) if is_uuid(value) else None


_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def parse_query_value(raw: str, schema: Schema, name: str) -> Any:
    """Convert one query-string value by its schema type, then validate it."""
    kinds = _types(schema)
    value: Any = raw
    if "integer" in kinds:
        text = raw.strip()
        if not re.fullmatch(r"-?\d{1,18}", text):
            raise _fail(name, "expected an integer")
        value = int(text)
    elif "boolean" in kinds:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            value = True
        elif lowered in _FALSE:
            value = False
        else:
            raise _fail(name, "expected true or false")
    validate(value, schema, name)
    return value
