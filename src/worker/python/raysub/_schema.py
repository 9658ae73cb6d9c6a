"""Checks a message from the agent against its schema in the contract (the part of JSON Schema the
contract uses: type, const, enum, pattern, lengths, bounds, properties, required, items, anyOf and
oneOf), so a message this library does not understand is refused where it enters, clearly.

Every frame a process reads is checked, so a schema is compiled once into nested checks, and a
`oneOf` whose alternatives are objects told apart by a constant field (the messages, by `t`) goes
straight to the alternative that field names: a task's `execute` costs one alternative's checks,
not a failed try of each before it. Where a value failed is worked out only when it fails."""

import re

_compiled = {}


class SchemaError(ValueError):
    pass


class _Fail(Exception):
    """A value failed a check: what is wrong, and where (filled in as it goes back up)."""

    def __init__(self, what):
        super().__init__(what)
        self.what = what
        self.path = []

    def render(self, where):
        return "%s%s %s" % (where, "".join(reversed(self.path)), self.what)


def check(schema, value, where="message"):
    """Raise SchemaError naming the first place where `value` does not match `schema`."""
    try:
        _compile(schema)(value)
    except _Fail as e:
        raise SchemaError(e.render(where)) from None


def _compile(schema):
    entry = _compiled.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    fn = _build(schema)
    # The schema is kept with its check, so its id cannot be reused by another object.
    _compiled[id(schema)] = (schema, fn)
    return fn


def _build(schema):
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives is not None:
        return _alternatives([_compile(a) for a in alternatives], _discriminator(alternatives))
    checks = []
    t = schema.get("type")
    if t == "object":
        checks.append(_object(schema))
    elif t == "array":
        checks.append(_array(schema))
    elif t == "string":
        checks.append(_string(schema))
    elif t in ("integer", "number"):
        checks.append(_number(schema, t))
    elif t == "boolean":
        checks.append(_type_is(bool, "is not a boolean"))
    elif t == "null":
        checks.append(_null)
    if "const" in schema:
        const = schema["const"]
        what = "is not %r" % (const,)

        def is_const(v):
            if v != const:
                raise _Fail(what)

        checks.append(is_const)
    if "enum" in schema:
        enum = schema["enum"]
        what = "is not one of %s" % ", ".join(map(str, enum))

        def in_enum(v):
            if v not in enum:
                raise _Fail(what)

        checks.append(in_enum)
    if len(checks) == 1:
        return checks[0]

    def all_of(v):
        for c in checks:
            c(v)

    return all_of


def _discriminator(alternatives):
    """(key, {value: index}) when every alternative is an object with a required constant `key`."""
    for key in ("t",):
        table = {}
        for i, a in enumerate(alternatives):
            p = (a.get("properties") or {}).get(key) or {}
            if a.get("type") != "object" or key not in a.get("required", ()) or "const" not in p or p["const"] in table:
                return None
            table[p["const"]] = i
        return key, table
    return None


def _alternatives(fns, disc):
    def any_of(v):
        if disc is not None and isinstance(v, dict):
            i = disc[1].get(v.get(disc[0]))
            if i is not None:
                # Only the alternative its constant names can match.
                fns[i](v)
                return
        errors = []
        for fn in fns:
            try:
                fn(v)
                return
            except _Fail as e:
                errors.append(e)
        if not errors:
            raise _Fail("matches no alternative")
        raise min(errors, key=lambda e: len(e.render("")))

    return any_of


def _object(schema):
    required = tuple(schema.get("required", ()))
    props = {k: _compile(s) for k, s in (schema.get("properties") or {}).items()}

    def obj(v):
        if not isinstance(v, dict):
            raise _Fail("is not an object")
        for key in required:
            if key not in v:
                raise _Fail("lacks %s" % key)
        for key, x in v.items():
            c = props.get(key)
            if c is not None:
                try:
                    c(x)
                except _Fail as e:
                    e.path.append(".%s" % key)
                    raise

    return obj


def _array(schema):
    items = _compile(schema["items"]) if schema.get("items") is not None else None

    def arr(v):
        if not isinstance(v, list):
            raise _Fail("is not a list")
        if items is not None:
            for i, x in enumerate(v):
                try:
                    items(x)
                except _Fail as e:
                    e.path.append("[%d]" % i)
                    raise

    return arr


def _string(schema):
    lo, hi = schema.get("minLength", 0), schema.get("maxLength")
    pattern = schema.get("pattern")
    rx = re.compile(pattern) if pattern is not None else None

    def string(v):
        if not isinstance(v, str):
            raise _Fail("is not a string")
        if len(v) < lo or (hi is not None and len(v) > hi):
            raise _Fail("has the wrong length")
        if rx is not None and not rx.search(v):
            raise _Fail("does not match %s" % pattern)

    return string


def _number(schema, t):
    lo, hi = schema.get("minimum"), schema.get("maximum")
    what = "is not an integer" if t == "integer" else "is not a number"

    def number(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (t == "integer" and v != int(v)):
            raise _Fail(what)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise _Fail("is out of range")

    return number


def _type_is(typ, what):
    def is_type(v):
        if not isinstance(v, typ):
            raise _Fail(what)

    return is_type


def _null(v):
    if v is not None:
        raise _Fail("is not null")
