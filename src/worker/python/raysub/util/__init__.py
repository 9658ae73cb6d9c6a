"""Ray's `ray.util` helpers that make sense inside a job: ActorPool, as_completed, map_unordered,
placement groups, queues (`util.queue`), pools (`util.multiprocessing`)."""

import socket

from .. import _objects
from .actor_pool import ActorPool
from .placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

DEFAULT_CHUNK_SIZE = 10
DEFAULT_BACKPRESSURE_SIZE = 100


def _batch(refs, chunk_size, yield_obj_refs, kwargs):
    if chunk_size < 1:
        raise ValueError("`chunk_size` must be >= 1")
    ready, refs = _objects.wait(refs, num_returns=min(chunk_size, len(refs)), **kwargs)
    return (ready if yield_obj_refs else _objects.get(ready)), refs


def as_completed(refs, *, chunk_size=DEFAULT_CHUNK_SIZE, yield_obj_refs=False, **kwargs):
    """Results (or refs) of `refs` in the order they finish."""
    if chunk_size < 1:
        raise ValueError("`chunk_size` must be >= 1")
    if "num_returns" in kwargs:
        raise ValueError("Use the `chunksize` argument instead of `num_returns`.")
    refs = list(refs)
    while refs:
        results, refs = _batch(refs, chunk_size, yield_obj_refs, kwargs)
        yield from results


def map_unordered(fn, items, *, backpressure_size=DEFAULT_BACKPRESSURE_SIZE, chunk_size=DEFAULT_CHUNK_SIZE, yield_obj_refs=False, **kwargs):
    """`fn.remote(item)` for each item, at most `backpressure_size` at once; results as they finish."""
    if backpressure_size is None:
        backpressure_size = float("inf")
    elif backpressure_size <= 0:
        raise ValueError("backpressure_size must be positive.")
    if chunk_size < 1:
        raise ValueError("`chunk_size` must be >= 1")
    if "num_returns" in kwargs:
        raise ValueError("Use the `chunk_size` argument instead of `num_returns`.")
    refs = []
    for item in items:
        refs.append(fn.remote(item))
        if len(refs) >= backpressure_size:
            results, refs = _batch(refs, chunk_size, yield_obj_refs, kwargs)
            yield from results
    yield from as_completed(refs, chunk_size=chunk_size, yield_obj_refs=yield_obj_refs, **kwargs)


def get_node_ip_address(address="8.8.8.8:53"):
    """This node's IP address (as other nodes would reach it)."""
    host, port = address.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((host, int(port)))
        return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


def list_named_actors(all_namespaces=False):
    """Names of the live named actors (of this namespace, or all with their namespaces)."""
    from .. import _cluster

    return _cluster.list_named_actors(all_namespaces)


def inspect_serializability(base_obj, name=None, depth=3, print_file=None):
    """Whether `base_obj` can travel to a task, and (printed) what cannot."""
    from .. import _serialization

    try:
        _serialization.encode(base_obj)
        return True, set()
    except Exception as e:  # noqa: BLE001
        print("%s cannot be serialized: %s" % (name or repr(base_obj), e), file=print_file)
        return False, {repr(base_obj)}


__all__ = [
    "ActorPool", "as_completed", "map_unordered", "get_node_ip_address", "list_named_actors", "inspect_serializability",
    "PlacementGroup", "placement_group", "get_placement_group", "get_current_placement_group", "placement_group_table",
    "remove_placement_group",
]
