"""How a task leaves this process: its function (by name when an importable module holds it, else
by value, exported once as an object of the job), its arguments and what else the worker needs.

A function or class travels by value (cloudpickle) when the driver script defines it, when it is a
lambda, a closure or a nested function, or when its module is registered with
`cloudpickle.register_pickle_by_value`: it is pickled once, stored as an object of the job, and
named by that object's id; each task lists that object among its dependencies, so the agent hands
its bytes to the worker, which unpickles it once. Everything else travels by module and name."""

import importlib
import os
import pickle
import sys

from ._contract import SIZES
from . import _context, _serialization
from ._refs import ObjectRef, _Dep, new_id

BY_VALUE = "__raysub_fn__"
INLINE_LIMIT = SIZES["INLINE_LIMIT"]

# In a worker: functions and classes already loaded, by reference.
_loaded = {}


_driver_dir = []


def script_dir():
    """The driver script's directory relative to the working dir, so workers can import what the
    script imports from beside it (as Ray adds it to its workers' paths). Found once, at the
    driver's first submission (a `getcwd` per task costs as much as the rest of a submission)."""
    if _context.in_worker:
        return _context.current().script_dir
    if not _driver_dir:
        _driver_dir.append(_find_script_dir())
    return _driver_dir[0]


def _find_script_dir():
    main = sys.modules.get("__main__")
    f = getattr(main, "__file__", None)
    if not f:
        return None
    d = os.path.dirname(os.path.abspath(f))
    cwd = os.getcwd()
    if d == cwd or not d.startswith(cwd + os.sep):
        return None
    return os.path.relpath(d, cwd)


def export(holder, obj, what):
    """The reference a task names its function or class by, and the object holding it (or None)."""
    if holder._export is not None:
        return holder._export
    with _context.lock:
        if holder._export is not None:
            return holder._export
        if _serialization.by_reference(obj, holder):
            holder._export = ({"module": obj.__module__, "name": obj.__qualname__}, None)
            return holder._export
        c = _context.connection()
        oid = new_id()
        # Set first: a function that names itself (recursion) pickles this reference, not itself again.
        holder._export = ({"module": BY_VALUE, "name": oid}, {"id": oid, "owner": c.node_id})
        try:
            data = _serialization.encode(obj)
        except Exception as e:
            holder._export = None
            raise TypeError("Could not serialize the %s %s: %s" % (what, getattr(obj, "__qualname__", obj), e)) from e
        c.put(oid, [data])
        if len(data) <= INLINE_LIMIT:
            with c.cond:
                c.objects[oid] = ("value", data, None)
        return holder._export


def export_if_connected(holder, obj, what):
    """`export`, or None when this process is not in a job (a remote function or actor class
    pickled there carries the function or class itself)."""
    from .exceptions import RayError

    try:
        return export(holder, obj, what)
    except RayError:
        return None


def load(fnref, by_value):
    """A task's function or class; `by_value(id)` gives the bytes of an exported one."""
    key = (fnref["module"], fnref["name"])
    obj = _loaded.get(key)
    if obj is not None:
        return obj
    if fnref["module"] == BY_VALUE:
        obj = by_value(fnref["name"])
    else:
        obj = importlib.import_module(fnref["module"])
        for part in fnref["name"].split("."):
            obj = getattr(obj, part)
    # A remote function or actor class (what @ray.remote made) stands for the function or class it wraps.
    wrapped = getattr(type(obj), "_raysub_wrapped", None)
    if isinstance(wrapped, property):
        obj = wrapped.fget(obj)
    _loaded[key] = obj
    return obj


def pack_args(args, kwargs, meta):
    """Arguments as bytes, with top-level ObjectRefs replaced by placeholders the worker fills."""
    deps = []
    seen = set()

    def swap(a):
        if isinstance(a, ObjectRef):
            if a.id not in seen:
                seen.add(a.id)
                deps.append({"id": a.id, "owner": a.owner})
            return _Dep(a.id)
        return a

    args = tuple(swap(a) for a in args)
    kwargs = {k: swap(v) for k, v in kwargs.items()}
    value = (args, kwargs, meta)
    if plain(value):
        # Plain data pickles the same with the standard pickler, several times faster than
        # cloudpickle's for a call's few small arguments (the agent's worker reads either).
        return pickle.dumps(value, protocol=_serialization.PROTOCOL), deps
    return _serialization.encode(value), deps


_PLAIN_TYPES = frozenset((str, int, float, bool, type(None), _Dep))
# Checked item by item: past this many, cloudpickle (whose pickler is C) is as quick.
_PLAIN_ITEMS = 64
_PLAIN_BYTES = 16 * 1024


def plain(v):
    """Whether `v` holds only built-in scalars, short bytes and the containers of those (nothing
    cloudpickle would pickle otherwise than the standard pickler), within _PLAIN_ITEMS items.
    Looked at with a stack rather than by recursion: this runs for every task's arguments."""
    budget = _PLAIN_ITEMS
    stack = [v]
    pop, push = stack.pop, stack.extend
    while stack:
        x = pop()
        budget -= 1
        if budget < 0:
            return False
        t = type(x)
        if t in _PLAIN_TYPES:
            continue
        if t is bytes:
            if len(x) > _PLAIN_BYTES:
                return False
        elif t is tuple or t is list:
            if len(x) > budget:
                return False
            push(x)
        elif t is dict:
            if len(x) > budget:
                return False
            for k in x:
                if type(k) is not str:
                    return False
            push(x.values())
        else:
            return False
    return True


def meta(env_vars, req):
    """What the worker needs besides the arguments: namespace, env_vars, the script's directory."""
    m = {"ns": _context.namespace}
    env = dict(_context.job_env_vars)
    env.update(env_vars or {})
    if env:
        m["env"] = env
    d = script_dir()
    if d:
        m["path"] = d
    m["res"] = req
    return m


def submit(kind, export_ref, name, opts, req, default_retries, args, kwargs, env_vars=None, actor_id=None, method=None,
           task_id=None, extra=None, spec_extra=None):
    c = _context.connection()
    m = meta(env_vars, req)
    if extra:
        m.update(extra)
    data, deps = pack_args(args, kwargs, m)
    fnref, fndep = export_ref
    if fndep is not None and all(d["id"] != fndep["id"] for d in deps):
        deps.append(fndep)
    tid = task_id or new_id()
    retries = opts.get("max_retries")
    spec = {
        "id": tid,
        "kind": kind,
        "fn": fnref,
        "name": name,
        "resources": req,
        "max_retries": default_retries if retries is None else int(retries),
        "retry_exceptions": bool(opts.get("retry_exceptions", False)),
        "deps": deps,
        "args_len": len(data),
    }
    if actor_id is not None:
        spec["actor_id"] = actor_id
    if method is not None:
        spec["method"] = method
    if spec_extra:
        spec.update(spec_extra)
    c.submit(spec, data)
    return ObjectRef(tid, c.node_id, _made=True)


def returns_meta(opts, is_generator):
    """(num_returns, what the worker and the agent are told) for a task or actor call."""
    nr = opts.get("num_returns")
    if nr is None:
        nr = "streaming" if is_generator else 1
    extra = {}
    spec = {}
    if nr != 1:
        extra["nr"] = nr
        spec["num_returns"] = nr
    retry = opts.get("retry_exceptions")
    if isinstance(retry, (list, tuple)):
        extra["retry_on"] = list(retry)
    return nr, extra, spec


def returns(ref, nr):
    """What `.remote()` gives back for `num_returns=nr`: a ref, a list of them, None, or a generator."""
    from .generators import ObjectRefGenerator

    if nr == 1 or nr == "dynamic":
        return ref
    if nr == "streaming":
        return ObjectRefGenerator(ref.id, ref.owner)
    if nr == 0:
        return None
    return [ObjectRef("%s_%d" % (ref.id, i), ref.owner, _made=True) for i in range(nr)]


def placement(opts):
    """Where a task or actor must run, from `scheduling_strategy` (or the older `placement_group`
    options): (what the agent is told, what the worker is told)."""
    if "scheduling_strategy" not in opts and "placement_group" not in opts:
        # The common case, decided without the imports below (this runs for every task).
        inherited = _context.current().placement_group
        if inherited and inherited.get("capture"):
            return {"placement": {"group": inherited["id"], "bundle": -1}}, {"pg": inherited}
        return {}, {}
    from .util.placement_group import PlacementGroup
    from .util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

    s = opts.get("scheduling_strategy")
    pg, index, capture = None, -1, False
    if isinstance(s, PlacementGroupSchedulingStrategy):
        pg, index, capture = s.placement_group, s.placement_group_bundle_index, bool(s.placement_group_capture_child_tasks)
    elif isinstance(s, NodeAffinitySchedulingStrategy):
        return {"placement": {"node": str(s.node_id), "soft": bool(s.soft)}}, {}
    elif s not in (None, "DEFAULT", "SPREAD"):
        raise ValueError("Invalid scheduling_strategy %r" % (s,))
    elif isinstance(opts.get("placement_group"), PlacementGroup):
        pg = opts["placement_group"]
        index = opts.get("placement_group_bundle_index", -1)
        capture = bool(opts.get("placement_group_capture_child_tasks"))
    elif s is None and opts.get("placement_group", "default") == "default":
        inherited = _context.current().placement_group
        if inherited and inherited.get("capture"):
            return {"placement": {"group": inherited["id"], "bundle": -1}}, {"pg": inherited}
    if pg is None:
        return {}, {}
    if not isinstance(pg, PlacementGroup):
        raise TypeError("placement_group must be a PlacementGroup, got %r" % (pg,))
    if index < -1 or index >= pg.bundle_count:
        raise ValueError("placement group bundle index %d is invalid: the group has %d bundles" % (index, pg.bundle_count))
    return ({"placement": {"group": pg.id, "bundle": index}},
            {"pg": {"id": pg.id, "bundles": pg.bundle_specs, "owner": pg._owner, "capture": capture}})
