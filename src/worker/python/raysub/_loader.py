"""Find remote functions and actor classes by reference (module and qualified name)."""

import importlib
import importlib.util
import os
import sys

from . import _api

_functions = {}
_main_module = None


def _load_main(main_file):
    """Import the entrypoint script as a module: its top level runs, its `__main__` block does not."""
    global _main_module
    if _main_module is not None:
        return _main_module
    path = main_file if os.path.isabs(main_file) else os.path.join(os.getcwd(), main_file)
    spec = importlib.util.spec_from_file_location("__raysub_main__", path)
    if spec is None or spec.loader is None:
        raise ImportError("cannot load the entrypoint script %s" % path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["__raysub_main__"] = module
    # Pickles made by the entrypoint name its objects `__main__.X`: they must find the script here.
    sys.modules["__main__"] = module
    d = os.path.dirname(path)
    if d not in sys.path:
        sys.path.insert(0, d)
    spec.loader.exec_module(module)
    _main_module = module
    return module


def load_function(ref):
    key = (ref["module"], ref["name"], ref.get("main_file"))
    fn = _functions.get(key)
    if fn is not None:
        return fn
    if ref["module"] in ("__main__", "__raysub_main__"):
        obj = _load_main(ref.get("main_file") or "") if _api._in_worker else sys.modules["__main__"]
    else:
        obj = importlib.import_module(ref["module"])
    for part in ref["name"].split("."):
        obj = getattr(obj, part)
    if isinstance(obj, _api.RemoteFunction):
        obj = obj._function
    elif isinstance(obj, _api.ActorClass):
        obj = obj._cls
    _functions[key] = obj
    return obj
