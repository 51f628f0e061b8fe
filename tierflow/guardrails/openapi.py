"""An OpenAPI 3 operation as one JSON Schema for a call's arguments.

A tool that wraps an HTTP operation takes its parameters by name and its request body
as `body`: `{"order_id": 1042, "expand": "items", "body": {...}}`. That convention turns
the operation's `parameters` and `requestBody` into a single object schema, so the
arguments can be checked like any other JSON:

- each parameter (path, query, header, cookie) is a property under its name, required
  when the operation says so (path parameters always are);
- the request body's JSON schema (`application/json`, or the first `*+json` or other
  media type) is the property `body`, required when `requestBody.required` is true;
- no other argument is allowed.

`$ref`s to `#/components/...` resolve because the document's `components` travel with
the schema. OpenAPI 3.0's dialect differences are translated (`nullable: true` adds
`null` to the type; boolean `exclusiveMinimum`/`exclusiveMaximum` become numbers); 3.1
schemas are JSON Schema 2020-12 already.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_OPERATION_KEYS = frozenset({"requestBody", "parameters", "responses", "operationId"})
_SCHEMA_KEYS = frozenset({"type", "properties", "$schema", "$ref", "items", "allOf", "anyOf"})
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def is_operation(schema: Mapping[str, Any]) -> bool:
    """Whether `schema` is an OpenAPI operation object rather than a JSON Schema."""
    return bool(_OPERATION_KEYS & schema.keys()) and not (_SCHEMA_KEYS & schema.keys())


def find_operation(document: Mapping[str, Any], path: str, method: str) -> dict[str, Any]:
    """The operation at `path` and `method` of an OpenAPI document, with the parameters
    its path item declares for every method put first (the operation's own come later
    and override them). A missing one is a `ValueError`."""
    paths = document.get("paths")
    item = paths.get(path) if isinstance(paths, Mapping) else None
    if not isinstance(item, Mapping):
        raise ValueError(f"the OpenAPI document has no path {path!r}")
    operation = item.get(method.lower())
    if method.lower() not in METHODS or not isinstance(operation, Mapping):
        raise ValueError(f"the OpenAPI document has no {method.upper()} {path}")
    shared = item.get("parameters")
    own = operation.get("parameters")
    merged = dict(operation)
    merged["parameters"] = [
        *(shared if isinstance(shared, list) else []),
        *(own if isinstance(own, list) else []),
    ]
    return merged


def operation_schema(
    operation: Mapping[str, Any], document: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON Schema of a call's arguments for `operation` (see the module docstring)."""
    components = (document or {}).get("components") or {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    parameters: dict[tuple[str, str], Mapping[str, Any]] = {}
    # A later parameter overrides an earlier one with the same name and place.
    for raw in operation.get("parameters") or []:
        parameter = _resolve(raw, components)
        if isinstance(parameter, Mapping) and isinstance(parameter.get("name"), str):
            parameters[(parameter["name"], str(parameter.get("in", "query")))] = parameter
    for (name, place), parameter in parameters.items():
        properties[name] = to_json_schema(_parameter_schema(parameter))
        if parameter.get("required") or place == "path":
            required.append(name)
    body = _resolve(operation.get("requestBody"), components)
    if isinstance(body, Mapping):
        properties["body"] = to_json_schema(_body_schema(body))
        if body.get("required"):
            required.append("body")
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    if components:
        schema["components"] = to_json_schema(components)
    return schema


def to_json_schema(value: Any) -> Any:
    """OpenAPI 3.0 schema keywords rewritten as JSON Schema 2020-12, recursively."""
    if isinstance(value, list):
        return [to_json_schema(v) for v in value]
    if not isinstance(value, Mapping):
        return value
    out = {key: to_json_schema(v) for key, v in value.items()}
    if out.pop("nullable", False) is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            out["type"] = [*kind, "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        flag = out.get(exclusive)
        if isinstance(flag, bool):
            del out[exclusive]
            if flag and bound in out:
                out[exclusive] = out.pop(bound)
    return out


def _resolve(value: Any, components: Mapping[str, Any]) -> Any:
    """Follow a local `$ref` (`#/components/parameters/Id`) to its object."""
    seen = 0
    while isinstance(value, Mapping) and isinstance(value.get("$ref"), str) and seen < 16:
        ref: str = value["$ref"]
        if not ref.startswith("#/components/"):
            return value
        target: Any = components
        for part in ref.removeprefix("#/components/").split("/"):
            target = target.get(part) if isinstance(target, Mapping) else None
        if target is None:
            raise ValueError(f"unresolvable $ref {ref!r} in the OpenAPI operation")
        value, seen = target, seen + 1
    return value


def _parameter_schema(parameter: Mapping[str, Any]) -> Any:
    if "schema" in parameter:
        return parameter["schema"]
    content = parameter.get("content")
    if isinstance(content, Mapping) and content:
        first = next(iter(content.values()))
        if isinstance(first, Mapping):
            return first.get("schema", {})
    return {}


def _body_schema(body: Mapping[str, Any]) -> Any:
    content = body.get("content")
    if not isinstance(content, Mapping) or not content:
        return {}
    for media_type in ("application/json", *sorted(content)):
        if media_type == "application/json" or media_type.endswith("+json"):
            chosen = content.get(media_type)
            if isinstance(chosen, Mapping):
                return chosen.get("schema", {})
    first = next(iter(content.values()))
    return first.get("schema", {}) if isinstance(first, Mapping) else {}
