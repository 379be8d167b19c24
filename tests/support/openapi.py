"""Checking a real response against the OpenAPI 3.0 schema the API serves: the schema's
``nullable`` made JSON Schema (``null`` allowed), ``$ref`` resolved from the served components,
and with ``strict`` every object closed (a key the schema does not document is an error)."""

from __future__ import annotations

import re

import jsonschema


def _json_schema(node, *, strict: bool):
    if isinstance(node, list):
        return [_json_schema(item, strict=strict) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value, strict=strict) for key, value in node.items()
                 if key not in ("nullable", "readOnly", "writeOnly")}
    if strict and converted.get("type") == "object" and "properties" in converted:
        converted.setdefault("additionalProperties", False)
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def operation_for(spec: dict, method: str, path: str) -> tuple[str, dict]:
    """The documented path template matching ``path`` (no query) and its operation for ``method``."""
    for template, operations in spec["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            return template, operations[method.lower()]
    raise AssertionError(f"{method} {path} is not in the schema")


def response_errors(spec: dict, method: str, path: str, status: int, body, *, strict: bool = True) -> list[str]:
    """Why ``body`` (answered with ``status``) is not what the schema documents; [] when it is."""
    template, operation = operation_for(spec, method, path.split("?")[0])
    documented = operation["responses"].get(str(status))
    if documented is None:
        return [f"{method} {template}: status {status} is not documented"]
    schema = documented["content"]["application/json"]["schema"]
    root = {**_json_schema(schema, strict=strict),
            "components": _json_schema(spec["components"], strict=strict)}
    validator = jsonschema.Draft7Validator(root)
    return [f"{method} {template} {status}: at {list(error.absolute_path)}: {error.message}"
            for error in validator.iter_errors(body)]
