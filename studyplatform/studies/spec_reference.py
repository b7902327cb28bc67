"""The reference of the study spec's fields, written from the schema's JSON Schema.

``manage.py study_spec_reference`` writes it to ``docs/study-spec.md``; a test fails when the
checked-in page differs from what the schema gives, so the page cannot drift from the code.
"""

from __future__ import annotations

import json
from typing import Any

from .spec_schema import spec_blocks, study_spec_model

__all__ = ["study_spec_reference"]

_INTRO = """\
# Study spec reference

<!-- Generated from the schema by `manage.py study_spec_reference`; do not edit by hand. -->

A study spec is the YAML (or JSON) a researcher writes to create a study:
`manage.py create_study spec.yaml` or `POST /api/studies/`. Whole examples are in
`fixtures/studies/`. The schema is `studyplatform/studies/spec_schema.py` (the core's
fields) plus the blocks other apps register:
{blocks}.

Every value is checked for its type
(`"12"` is not a number, `1` is not `true`), unknown fields are refused, and an error names
the field's path, such as `mturk.qualifications.custom[1].comparator`. After the schema, the
names are resolved against the database (archive, feature set, query images and classes) and
the study is created in one transaction: on any error nothing is written.

Fields without a default are required. Limits are inclusive.
"""


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _type(schema: dict) -> str:
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f"[{name}](#{name.lower()})"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "anyOf" in schema or "oneOf" in schema:
        parts = [_type(s) for s in schema.get("anyOf") or schema["oneOf"]]
        return " or ".join(dict.fromkeys(parts))
    kind = schema.get("type")
    if kind == "array":
        items = _type(schema.get("items", {}))
        return f"list of {items}"
    if kind == "object":
        return "mapping"
    if kind is None:
        return "any"
    words = {"integer": "integer", "string": "string", "boolean": "true/false", "null": "null"}
    return words.get(kind, kind)


def _limits(schema: dict) -> str:
    if "anyOf" in schema:
        return "; ".join(filter(None, (_limits(s) for s in schema["anyOf"])))
    found = []
    if "minimum" in schema and "maximum" in schema:
        found.append(f"{schema['minimum']} to {schema['maximum']}")
    elif "minimum" in schema:
        found.append(f">= {schema['minimum']}")
    elif "maximum" in schema:
        found.append(f"<= {schema['maximum']}")
    if "exclusiveMinimum" in schema:
        found.append(f"> {schema['exclusiveMinimum']}")
    if "minLength" in schema:
        found.append("not empty" if schema["minLength"] == 1 else f">= {schema['minLength']} chars")
    if "maxLength" in schema:
        found.append(f"<= {schema['maxLength']} chars")
    if "minItems" in schema:
        found.append(f">= {schema['minItems']} items")
    if "maxItems" in schema:
        found.append(f"<= {schema['maxItems']} items")
    if "pattern" in schema:
        found.append(f"`{schema['pattern']}`")
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        inner = _limits(schema["items"])
        if inner:
            found.append(f"each {inner}")
    return ", ".join(found)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _prose(text: str) -> str:
    """A docstring as one Markdown paragraph (reST's double backticks made single)."""
    return " ".join(text.replace("``", "`").split())


def _section(name: str, schema: dict, *, where: str, blocks: dict) -> list[str]:
    lines = [f"## {name}", ""]
    if where:
        lines += [f"At `{where}`.", ""]
    if schema.get("description"):
        lines += [_prose(schema["description"]), ""]
    lines += [
        "| field | type | default | limits | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    required = set(schema.get("required", []))
    for field, prop in schema.get("properties", {}).items():
        default = "required" if field in required else f"`{json.dumps(prop.get('default'))}`"
        if field in blocks:
            default = "`{}` (not used)"
        description = _prose(prop.get("description", ""))
        cells = [f"`{field}`", _type(prop), default, _limits(prop), description]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return [*lines, ""]


def _referenced(schema: Any, path: str) -> list[tuple[str, str]]:
    """``(definition, path)`` of each definition ``schema`` (found at ``path``) refers to, in
    order of appearance; a list's items are at ``path[]``."""
    if isinstance(schema, list):
        return [found for item in schema for found in _referenced(item, path)]
    if not isinstance(schema, dict):
        return []
    found = [(_ref_name(schema["$ref"]), path)] if "$ref" in schema else []
    for key, value in schema.items():
        if key == "properties":
            for name, prop in value.items():
                found += _referenced(prop, f"{path}.{name}" if path else name)
        elif key == "items":
            found += _referenced(value, f"{path}[]")
        elif key in ("anyOf", "oneOf", "allOf"):
            found += _referenced(value, path)
    return found


def study_spec_reference() -> str:
    """The Markdown reference of every field of the spec: one table per block, the top level
    first, then each block in the order it is first referred to."""
    blocks = spec_blocks()
    schema = study_spec_model().model_json_schema(by_alias=True, mode="validation")
    definitions = schema.pop("$defs", {})
    where: dict[str, str] = {}
    queue = _referenced(schema, "")
    while queue:
        name, path = queue.pop(0)
        if name not in where:
            where[name] = path
            queue += _referenced(definitions[name], path)
    owned = ", ".join(f"`{name}` ({block.model.__module__})" for name, block in blocks.items())
    lines = [
        _INTRO.format(blocks=owned or "none"),
        *_section("StudySpec", schema, where="", blocks=blocks),
    ]
    for name, path in where.items():
        lines += _section(name, definitions[name], where=path, blocks={})
    return "\n".join(lines).rstrip() + "\n"
