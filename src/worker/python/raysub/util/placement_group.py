"""Placement groups: sets of resource bundles reserved together, PACK (as few nodes as possible),
SPREAD (as many as possible), STRICT_PACK (one node) or STRICT_SPREAD (each bundle on its own
node); tasks and actors are then scheduled into a bundle (Ray's `ray.util.placement_group`). The
head reserves the bundles on its nodes; a placement group lives until it is removed or the job
ends."""

from .. import _context
from .._refs import ObjectRef, new_id

VALID_PLACEMENT_GROUP_STRATEGIES = {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"}


class PlacementGroup:
    """A reserved set of bundles; `ready()` is an ObjectRef that resolves once all are placed."""

    def __init__(self, id, bundle_specs=None, owner=None):
        self.id = id
        self._bundles = [dict(b) for b in (bundle_specs or [])]
        self._owner = owner

    @property
    def bundle_specs(self):
        return [dict(b) for b in self._bundles]

    @property
    def bundle_count(self):
        return len(self._bundles)

    def ready(self):
        """A ref whose value is this group, ready once every bundle is reserved."""
        return ObjectRef(self.id, self._owner or _context.connection().node_id)

    def wait(self, timeout_seconds=30):
        """Whether every bundle is reserved within `timeout_seconds`."""
        from .. import _objects

        ready, _ = _objects.wait([self.ready()], timeout=timeout_seconds)
        return bool(ready)

    def __eq__(self, other):
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return "PlacementGroup(%s)" % self.id


def _bundle(b):
    """A bundle as the agent takes a resource request."""
    if not isinstance(b, dict) or not b:
        raise ValueError("Bundles must be a non-empty dictionary of resource names to amounts, got %r" % (b,))
    out = {"cpus": 0.0, "gpus": 0.0, "memory": 0, "custom": {}}
    for k, v in b.items():
        if not isinstance(v, (int, float)) or v < 0:
            raise ValueError("Bundles cannot have a negative or non-numeric amount: %r" % (b,))
        if k == "CPU":
            out["cpus"] = float(v)
        elif k == "GPU":
            out["gpus"] = float(v)
        elif k == "memory":
            out["memory"] = int(v)
        else:
            out["custom"][k] = float(v)
    if all(v == 0 for v in b.values()):
        raise ValueError("Bundles cannot be an empty dictionary or resources with only 0 values. Bundles: %s" % [b])
    return out


def placement_group(bundles, strategy="PACK", name="", lifetime=None, _soft_target_node_id=None, bundle_label_selector=None):
    """Reserve `bundles` (a list of resource dicts, e.g. `[{"CPU": 1}] * 2`) with `strategy`."""
    from .. import _cluster

    if not isinstance(bundles, list) or not bundles:
        raise ValueError("The placement group `bundles` argument cannot contain an empty list")
    if strategy not in VALID_PLACEMENT_GROUP_STRATEGIES:
        raise ValueError("Invalid placement group strategy %s. Supported strategies are: %s." % (strategy, sorted(VALID_PLACEMENT_GROUP_STRATEGIES)))
    if lifetime not in (None, "detached"):
        raise ValueError("Placement group `lifetime` argument must be either `None` or 'detached'. Got %s." % lifetime)
    requests = [_bundle(b) for b in bundles]
    c = _context.connection()
    pg_id = "pg" + new_id()
    _context.ask("pg_create", {"id": pg_id, "bundles": requests, "strategy": strategy, "name": name or ""})
    return PlacementGroup(pg_id, bundles, c.node_id)


def remove_placement_group(placement_group):
    """Give back a placement group's bundles (its tasks and actors that still run end)."""
    from .. import _cluster

    if not isinstance(placement_group, PlacementGroup):
        raise TypeError("remove_placement_group() takes a PlacementGroup")
    _context.ask("pg_remove", {"id": placement_group.id})


def get_placement_group(placement_group_name):
    """The live placement group named so."""
    from .. import _cluster

    header, _ = _context.ask("pg_get", {"name": placement_group_name})
    v = header.get("value") or {}
    return PlacementGroup(v["id"], v.get("bundles"), v.get("owner"))


def placement_group_table(placement_group=None):
    """State of a placement group (or of all this job's), as Ray describes it."""
    from .. import _cluster

    header, _ = _context.ask("pg_table", {"id": placement_group.id if placement_group else None})
    table = {pg_id: _by_index(entry) for pg_id, entry in (header.get("value") or {}).items()}
    return table.get(placement_group.id, {}) if placement_group else table


def _by_index(entry):
    # Bundles are keyed by their index, an int in Ray's table (JSON made them strings).
    for k in ("bundles", "bundles_to_node_id"):
        if isinstance(entry.get(k), dict):
            entry[k] = {int(i): v for i, v in entry[k].items()}
    return entry


def get_current_placement_group():
    """The placement group the running task or actor was scheduled in (when it captures child
    tasks), else None."""
    pg = _context.current().placement_group
    return PlacementGroup(pg["id"], pg.get("bundles"), pg.get("owner")) if pg else None
