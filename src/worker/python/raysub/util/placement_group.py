"""Placement groups: sets of resource bundles reserved together (PACK, SPREAD, STRICT_PACK,
STRICT_SPREAD), and tasks and actors scheduled into their bundles (Ray's
`ray.util.placement_group`)."""

from ..exceptions import RaysubNotSupportedError

VALID_PLACEMENT_GROUP_STRATEGIES = {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"}


class PlacementGroup:
    """A reserved set of bundles; `ready()` is an ObjectRef that resolves once all are placed."""

    def __init__(self, id, bundle_specs=None):
        self.id = id
        self._bundles = bundle_specs or []

    @property
    def bundle_specs(self):
        return [dict(b) for b in self._bundles]

    @property
    def bundle_count(self):
        return len(self._bundles)

    def __eq__(self, other):
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self):
        return hash(self.id)


def _not_yet():
    return RaysubNotSupportedError("placement groups are not available in this version of raysub's in-job API")


def placement_group(bundles, strategy="PACK", name="", lifetime=None, _soft_target_node_id=None, bundle_label_selector=None):
    raise _not_yet()


def remove_placement_group(placement_group):
    raise _not_yet()


def get_placement_group(placement_group_name):
    raise _not_yet()


def placement_group_table(placement_group=None):
    raise _not_yet()


def get_current_placement_group():
    return None
