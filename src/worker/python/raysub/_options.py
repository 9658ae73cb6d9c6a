"""Options of remote functions, actors and actor methods, checked as Ray checks them (names, types,
values, and Ray's error messages)."""

import numbers


def _counting(name, infinite=True):
    def check(v):
        if v is None:
            return None
        if infinite and v < -1 or not infinite and v < 0:
            return "The keyword '%s' only accepts None, 0%s or a positive integer%s." % (
                name, ", -1" if infinite else "", ", where -1 represents infinity" if infinite else "")
        return None

    return ((int, type(None)), check)


def _quantity(name, v):
    if v < 0:
        return "The quantity of resource %s cannot be negative" % name
    if isinstance(v, float) and v != 0.0 and int(v * 10000) == 0:
        return "The precision of the fractional quantity of resource %s cannot go beyond 0.0001" % name
    return None


def _resource(name):
    return ((float, int, type(None)), lambda v: None if v is None else _quantity(name, v))


def _resources(v):
    if v is None:
        return None
    if "CPU" in v or "GPU" in v:
        return "Use the 'num_cpus' and 'num_gpus' keyword instead of 'CPU' and 'GPU' in 'resources' keyword"
    for k, q in v.items():
        if not isinstance(q, numbers.Number):
            return "The quantity of resource %s must be a number" % k
        err = _quantity(k, q)
        if err:
            return err
    return None


def _num_returns(v):
    if v is None or v in ("dynamic", "streaming") or isinstance(v, int) and v >= 0:
        return None
    return "The keyword 'num_returns' only accepts None, a non-negative integer, 'streaming' (for generators), or 'dynamic'."


def _retry_exceptions(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, (list, tuple)) and all(isinstance(x, type) and issubclass(x, Exception) for x in v):
        return None
    return "retry_exceptions must be either a boolean or a list of exceptions"


def _lifetime(v):
    return None if v in (None, "detached", "non_detached") else "actor `lifetime` argument must be one of 'detached', 'non_detached' and 'None'."


def _any():
    return (None, None)


_COMMON = {
    "label_selector": ((dict, type(None)), None),
    "fallback_strategy": ((list, type(None)), None),
    "accelerator_type": ((str, type(None)), None),
    "memory": _resource("memory"),
    "name": ((str, type(None)), None),
    "num_cpus": _resource("num_cpus"),
    "num_gpus": _resource("num_gpus"),
    "object_store_memory": _counting("object_store_memory", False),
    "placement_group": _any(),
    "placement_group_bundle_index": (int, None),
    "placement_group_capture_child_tasks": ((bool, type(None)), None),
    "resources": ((dict, type(None)), _resources),
    "runtime_env": _any(),
    "scheduling_strategy": _any(),
    "enable_task_events": (bool, None),
    "_labels": ((dict, type(None)), None),
    "_metadata": ((dict, type(None)), None),
}

TASK = dict(_COMMON, **{
    "max_calls": _counting("max_calls", False),
    "max_retries": _counting("max_retries"),
    "num_returns": ((int, str, type(None)), _num_returns),
    "object_store_memory": ((int, type(None)), lambda v: None if v is None else "Setting 'object_store_memory' is not implemented for tasks"),
    "retry_exceptions": ((bool, list, tuple), _retry_exceptions),
    "_generator_backpressure_num_objects": ((int, type(None)), None),
    "_num_objects_per_yield": ((int, type(None)), None),
})

ACTOR = dict(_COMMON, **{
    "concurrency_groups": ((list, dict, type(None)), None),
    "enable_tensor_transport": ((bool, type(None)), None),
    "lifetime": ((str, type(None)), _lifetime),
    "max_concurrency": _counting("max_concurrency", False),
    "max_restarts": _counting("max_restarts"),
    "max_task_retries": _counting("max_task_retries"),
    "max_pending_calls": _counting("max_pending_calls"),
    "namespace": ((str, type(None)), None),
    "get_if_exists": (bool, None),
    "allow_out_of_order_execution": ((bool, type(None)), None),
    "_actor_generator_backpressure_num_objects": ((int, type(None)), None),
})

METHOD = {
    "num_returns": ((int, str, type(None)), _num_returns),
    "concurrency_group": ((str, type(None)), None),
    "max_task_retries": _counting("max_task_retries"),
    "retry_exceptions": ((bool, list, tuple), _retry_exceptions),
    "enable_task_events": (bool, None),
    "tensor_transport": ((str, type(None)), None),
    "name": ((str, type(None)), None),
    "_generator_backpressure_num_objects": ((int, type(None)), None),
}


def _validate(table, what, options):
    for k, v in options.items():
        rule = table.get(k)
        if rule is None:
            raise ValueError("Invalid option keyword %s for %s. Valid ones are %s." % (k, what, list(table)))
        types, check = rule
        if types is not None and not isinstance(v, types):
            raise TypeError("The type of keyword '%s' must be %s, but received type %s" % (k, types, type(v)))
        if check is not None:
            err = check(v)
            if err:
                raise ValueError(err)
    gpus = options.get("num_gpus") or 0
    if gpus > 1 and int(gpus) != gpus:
        raise ValueError("num_gpus above 1 must be a whole number")


def task_options(options, in_options=False):
    _validate(TASK, "remote functions", options)
    if in_options and "max_calls" in options:
        raise ValueError("Setting 'max_calls' is not supported in '.options()'.")


def actor_options(options, in_options=False):
    _validate(ACTOR, "actors", options)
    if in_options and "concurrency_groups" in options:
        raise ValueError("Setting 'concurrency_groups' is not supported in '.options()'.")
    if options.get("get_if_exists") and not options.get("name"):
        raise ValueError("The actor name must be specified to use `get_if_exists`.")


def method_options(options):
    _validate(METHOD, "actor methods", options)


def resources(opts, default_cpus):
    """The resource request of a task or actor, as the agent takes it."""
    cpus = opts.get("num_cpus")
    return {
        "cpus": float(default_cpus if cpus is None else cpus),
        "gpus": float(opts.get("num_gpus") or 0),
        "memory": int(opts.get("memory") or 0),
        "custom": {k: float(v) for k, v in (opts.get("resources") or {}).items()},
    }


def assigned(req):
    """The resources a task holds, as `get_assigned_resources()` names them."""
    out = {}
    if req["cpus"]:
        out["CPU"] = req["cpus"]
    if req["gpus"]:
        out["GPU"] = req["gpus"]
    if req["memory"]:
        out["memory"] = float(req["memory"])
    out.update(req["custom"])
    return out
