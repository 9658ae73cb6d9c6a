"""Generator tasks' results: `ObjectRefGenerator` (num_returns="streaming", the default for a
generator function) yields one ObjectRef per value the task yields; `DynamicObjectRefGenerator`
(num_returns="dynamic") is the value of the task's single ref and holds them all."""


class ObjectRefGenerator:
    """Iterate to get each yielded value's ObjectRef, in order, as the task yields them."""

    def __init__(self, refs):
        self._refs = list(refs)
        self._at = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self._at >= len(self._refs):
            raise StopIteration
        self._at += 1
        return self._refs[self._at - 1]

    def __len__(self):
        return len(self._refs)


class DynamicObjectRefGenerator:
    """The value of a `num_returns="dynamic"` task: iterate to get its ObjectRefs."""

    def __init__(self, refs):
        self._refs = list(refs)

    def __iter__(self):
        return iter(self._refs)

    def __len__(self):
        return len(self._refs)

    def __reduce__(self):
        return (DynamicObjectRefGenerator, (self._refs,))
