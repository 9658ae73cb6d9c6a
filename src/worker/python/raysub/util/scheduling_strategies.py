"""Scheduling strategies for `.options(scheduling_strategy=...)` (Ray's
`ray.util.scheduling_strategies`): "DEFAULT", "SPREAD", a placement group's bundle, or a node."""


class PlacementGroupSchedulingStrategy:
    """Run in `placement_group`'s bundle `placement_group_bundle_index` (-1: any of its bundles)."""

    def __init__(self, placement_group, placement_group_bundle_index=-1, placement_group_capture_child_tasks=None):
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks


class NodeAffinitySchedulingStrategy:
    """Run on the node `node_id` (anywhere if `soft` and that node cannot)."""

    def __init__(self, node_id, soft, _spill_on_unavailable=False, _fail_on_unavailable=False):
        self.node_id = node_id
        self.soft = soft
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable


class In:
    def __init__(self, *values):
        self.values = list(values)


class NotIn:
    def __init__(self, *values):
        self.values = list(values)


class Exists:
    pass


class DoesNotExist:
    pass


class NodeLabelSchedulingStrategy:
    """Run on a node whose labels match `hard` (and preferably `soft`)."""

    def __init__(self, hard, *, soft=None):
        self.hard = hard
        self.soft = soft
