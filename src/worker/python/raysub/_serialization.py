"""How values become bytes and bytes become values: the one place the library encodes and decodes
objects (task arguments, results, `put` values, functions shipped by value, exceptions).

cloudpickle (vendored under `_vendor/cloudpickle`, its licence beside it) pickles functions and
classes defined in the driver script, lambdas and closures by value, as Ray does; everything an
importable module defines still travels by reference. The output is ordinary pickle (protocol 5),
so decoding is `pickle.loads`.

An object store that reads values without copying (shared memory, out-of-band buffers) plugs in
here: `encode` and the two `decode` functions are all the rest of the library uses."""

import pickle
import sys

from ._vendor import cloudpickle

PROTOCOL = 5


def encode(value):
    """The bytes of a value."""
    return cloudpickle.dumps(value, protocol=PROTOCOL)


def decode(data):
    """The value of bytes made by `encode` (bytes or any buffer)."""
    return pickle.loads(data)


def decode_file(path):
    """The value of an object the agent stored as a file."""
    with open(path, "rb") as f:
        return pickle.loads(f.read())


def by_reference(obj, wrapper=None):
    """Whether a function or class can travel by name: an importable module (not the driver
    script, not registered with `cloudpickle.register_pickle_by_value`) holds it, or holds
    `wrapper` (the remote function or actor class made of it), under its qualified name. Else it
    travels by value."""
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None)
    if not module or not name or module in ("__main__", "__mp_main__") or "<" in name:
        return False
    mod = sys.modules.get(module)
    if mod is None or cloudpickle.cloudpickle._is_registered_pickle_by_value(mod):
        return False
    try:
        found = cloudpickle.cloudpickle._getattribute(mod, name)
    except (AttributeError, TypeError):
        return False
    return found is obj or (wrapper is not None and found is wrapper)
