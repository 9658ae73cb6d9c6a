"""Checks a message from the agent against its schema in the contract (the part of JSON Schema the
contract uses: type, const, enum, pattern, lengths, bounds, properties, required, items, anyOf and
oneOf), so a message this library does not understand is refused where it enters, clearly."""

import re

_patterns = {}


class SchemaError(ValueError):
    pass


def check(schema, value, where="message"):
    """Raise SchemaError naming the first place where `value` does not match `schema`."""
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives is not None:
        errors = []
        for alt in alternatives:
            try:
                check(alt, value, where)
                return
            except SchemaError as e:
                errors.append(str(e))
        raise SchemaError(min(errors, key=len) if errors else "%s matches no alternative" % where)
    t = schema.get("type")
    if t == "object":
        if not isinstance(value, dict):
            raise SchemaError("%s is not an object" % where)
        for key in schema.get("required", ()):
            if key not in value:
                raise SchemaError("%s lacks %s" % (where, key))
        props = schema.get("properties", {})
        for key, v in value.items():
            if key in props:
                check(props[key], v, "%s.%s" % (where, key))
    elif t == "array":
        if not isinstance(value, list):
            raise SchemaError("%s is not a list" % where)
        items = schema.get("items")
        if items is not None:
            for i, v in enumerate(value):
                check(items, v, "%s[%d]" % (where, i))
    elif t == "string":
        if not isinstance(value, str):
            raise SchemaError("%s is not a string" % where)
        if len(value) > schema.get("maxLength", len(value)) or len(value) < schema.get("minLength", 0):
            raise SchemaError("%s has the wrong length" % where)
        pattern = schema.get("pattern")
        if pattern is not None:
            rx = _patterns.get(pattern) or _patterns.setdefault(pattern, re.compile(pattern))
            if not rx.search(value):
                raise SchemaError("%s does not match %s" % (where, pattern))
    elif t in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (t == "integer" and value != int(value)):
            raise SchemaError("%s is not %s" % (where, "an integer" if t == "integer" else "a number"))
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            raise SchemaError("%s is out of range" % where)
    elif t == "boolean":
        if not isinstance(value, bool):
            raise SchemaError("%s is not a boolean" % where)
    elif t == "null":
        if value is not None:
            raise SchemaError("%s is not null" % where)
    if "const" in schema and value != schema["const"]:
        raise SchemaError("%s is not %r" % (where, schema["const"]))
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError("%s is not one of %s" % (where, ", ".join(map(str, schema["enum"]))))
