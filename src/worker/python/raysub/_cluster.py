"""Calls about the cluster and about other actors and tasks: resources, nodes, named actors,
cancellation."""

from . import _context
from .exceptions import RaysubNotSupportedError


def _not_yet(name):
    return RaysubNotSupportedError("ray.%s() is not available in this version of raysub's in-job API" % name)


def available_resources():
    """Resources free in the cluster now, by name (CPU, GPU, memory, custom)."""
    _context.connection()
    raise _not_yet("available_resources")


def cluster_resources():
    """Resources of the cluster's live nodes, by name."""
    _context.connection()
    raise _not_yet("cluster_resources")


def nodes():
    """The cluster's nodes, as Ray describes them."""
    _context.connection()
    raise _not_yet("nodes")


def get_actor(name, namespace=None):
    """The handle of the named actor (in `namespace`, or this job's)."""
    _context.connection()
    raise _not_yet("get_actor")


def cancel(ref, *, force=False, recursive=True):
    """Cancel a task: if it has not started it never runs; `get` raises TaskCancelledError."""
    _context.connection()
    raise _not_yet("cancel")


def timeline(filename=None):
    raise RaysubNotSupportedError("ray.timeline() is not supported by raysub: `raysub job status` and `raysub job logs` show a job's tasks and output")


def list_named_actors(all_namespaces=False):
    _context.connection()
    raise _not_yet("util.list_named_actors")
