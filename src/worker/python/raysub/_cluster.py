"""Calls about the cluster and about other actors and tasks: resources and nodes, named actors,
cancellation. Each asks this process's agent (which asks the head where only it knows)."""

from . import _context, _serialization, exceptions




def _namespace(namespace):
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise TypeError("namespace must be None or a non-empty string")
    _context.connection()
    return namespace if namespace is not None else _context.namespace


def register_actor(handle, name, namespace, get_if_exists, detached):
    """Name an actor about to start; the existing actor's handle if the name is taken and
    `get_if_exists`, else ActorAlreadyExistsError. None when the name is now this actor's."""
    if not isinstance(name, str) or not name:
        raise ValueError("Actor name must be a non-empty string")
    ns = _namespace(namespace)
    header, data = _context.ask("name_actor", {"name": name, "namespace": ns, "get_if_exists": get_if_exists, "detached": detached,
                                       "actor_id": handle._actor_id}, (_serialization.encode(handle),))
    if header.get("value", {}).get("created"):
        return None
    return _serialization.decode(data)


def get_actor(name, namespace=None):
    """The handle of the live actor named `name` in `namespace` (this job's namespace by default)."""
    if not isinstance(name, str) or not name:
        raise ValueError("Please supply a non-empty value to get_actor")
    ns = _namespace(namespace)
    _, data = _context.ask("get_actor", {"name": name, "namespace": ns})
    return _serialization.decode(data)


def list_named_actors(all_namespaces=False):
    """Names of the live named actors in this namespace (dicts with namespaces, with `all_namespaces`)."""
    ns = _namespace(None)
    header, _ = _context.ask("list_actors", {})
    actors = header.get("value") or []
    if all_namespaces:
        return [{"name": a["name"], "namespace": a["namespace"]} for a in actors]
    return [a["name"] for a in actors if a["namespace"] == ns]


def _cluster():
    header, _ = _context.ask("cluster", {})
    return header.get("value") or {}


def _ray_names(r):
    out = {}
    if r.get("cpus"):
        out["CPU"] = float(r["cpus"])
    if r.get("gpus"):
        out["GPU"] = float(r["gpus"])
    if r.get("memory"):
        out["memory"] = float(r["memory"])
    for k, v in (r.get("custom") or {}).items():
        out[k] = float(v)
    return out


def _total(kind):
    view = _cluster()
    out = {}
    for n in view.get("nodes", []):
        if not n.get("alive"):
            continue
        for k, v in _ray_names(n.get(kind) or {}).items():
            out[k] = out.get(k, 0.0) + v
        out["node:%s" % n.get("address", n["node_id"])] = 1.0
    cap = view.get("cpu_limit")
    if cap is not None and "CPU" in out:
        # ray.init(num_cpus=N): the job sees a cluster of N CPUs.
        out["CPU"] = float(cap) if kind == "total" else min(out["CPU"], float(view.get("cpu_free_under_limit", cap)))
    return out


def cluster_resources():
    """Resources of the cluster's live nodes, by Ray's names (CPU, GPU, memory, custom, node:<ip>)."""
    return _total("total")


def available_resources():
    """Resources free in the cluster now, by the same names."""
    return _total("free")


def nodes():
    """The cluster's nodes, as Ray describes them."""
    out = []
    for n in _cluster().get("nodes", []):
        resources = _ray_names(n.get("total") or {})
        resources["node:%s" % n.get("address", n["node_id"])] = 1.0
        out.append({
            "NodeID": n["node_id"], "Alive": bool(n.get("alive")), "alive": bool(n.get("alive")),
            "NodeManagerAddress": n.get("address", ""), "NodeManagerHostname": n.get("hostname", ""),
            "NodeName": n.get("name", ""), "Resources": resources, "Labels": {},
        })
    return out


def cancel(ref, *, force=False, recursive=True):
    """Cancel a task: if it has not started it never runs; if it runs, it is interrupted (or its
    worker killed, with `force`). `get` on it raises TaskCancelledError."""
    from ._refs import ObjectRef
    from .generators import ObjectRefGenerator

    if isinstance(ref, ObjectRefGenerator):
        ref = ref.completed()
    if not isinstance(ref, ObjectRef):
        raise TypeError("ray.cancel() only supported for object refs. For actors, try ray.kill(). Got: %s." % type(ref))
    c = _context.connection()
    c.flush()
    c.send({"t": "cancel", "ref": {"id": ref.id, "owner": ref.owner}, "force": bool(force), "recursive": bool(recursive)})



def timeline(filename=None):
    raise exceptions.RaysubNotSupportedError("ray.timeline() is not supported by raysub: `raysub job status` and `raysub job logs` show a job's tasks and output")
