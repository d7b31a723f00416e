"""What a local judge judged in this process, by key (`backends.reward_judge`'s `MEMO`): a bounded LRU map."""

from __future__ import annotations

from collections import OrderedDict


class Memo:
    """Rewards by key, the most recently used last; past `size` entries the least recently used is forgotten.

    >>> m = Memo(2); m.put(b"a", 1.0); m.put(b"b", 2.0); m.get(b"a"); m.put(b"c", 3.0)
    1.0
    >>> m.get(b"b") is None, m.get(b"a"), m.get(b"c")
    (True, 1.0, 3.0)
    """

    def __init__(self, size: int) -> None:
        self.size, self.items = size, OrderedDict()

    def get(self, key: bytes) -> float | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: bytes, value: float) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)

    def clear(self) -> None:
        self.items.clear()


MEMO = Memo(200_000)  # this process's judged texts (about 100 bytes each): see reward_judge's docstring
