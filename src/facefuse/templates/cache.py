"""The loaded templates a process keeps: least recently used, bounded in count and in bytes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, Protocol, TypeVar


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


Item = TypeVar("Item", bound=Sized)


class LoadedCache(Generic[Item]):
    """Items by key, the least recently used dropped first once there are more than
    `max_items` or they hold more than `max_bytes` (the last one is always kept)."""

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], Item] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str]) -> Item | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item

    def put(self, key: tuple[str, str], item: Item) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = item
            self._bytes += item.nbytes
            while len(self._items) > 1 and (len(self._items) > self.max_items or self._bytes > self.max_bytes):
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            evicted = self._items.pop(key, None)
            if evicted is not None:
                self._bytes -= evicted.nbytes

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"templates": len(self._items), "bytes": self._bytes, "hits": self.hits, "misses": self.misses}
