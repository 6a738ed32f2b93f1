"""Audiences: expressions over tags (and areas, hexes, scores) as bitmap algebra on a published snapshot.

Published bitmaps never change, so each is deserialized once per process and kept by key; a preview
is then a handful of roaring-bitmap operations, milliseconds even at 10 M subscribers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache

from pyroaring import BitMap, FrozenBitMap

from ..features import feature_symbols
from ..expressions import BitmapResolver, Expression, ExpressionError, Symbol, Type, parse
from ..models import Region, RegionSnapshot, Snapshot, TagSnapshot

# area("...") and hex("...") come from the micro-area app, which registers them here in ready():
# function name -> (the user's snapshot bitmaps, argument) -> bitmap of subscribers, raising
# ExpressionError when the argument names nothing the user may use.
AUDIENCE_FUNCTIONS: dict[str, Callable[["SnapshotBitmaps", str], BitMap]] = {}


@lru_cache(maxsize=4096)
def load_bitmap(model: str, pk: int, published: float) -> FrozenBitMap:
    # `published` is part of the key so that a re-used primary key (a test database) is never mistaken.
    table = {"tag": TagSnapshot, "region": RegionSnapshot}[model]
    return FrozenBitMap.deserialize(bytes(table.objects.values_list("bitmap", flat=True).get(pk=pk)))


@lru_cache(maxsize=64)
def snapshot_index(snapshot_id: int, published: float) -> dict[str, dict[str, int]]:
    return {
        "tag": dict(TagSnapshot.objects.filter(snapshot_id=snapshot_id).values_list("tag__code", "id")),
        "region": dict(RegionSnapshot.objects.filter(snapshot_id=snapshot_id).values_list("region__code", "id")),
    }


class SnapshotBitmaps:
    """The bitmaps of one published snapshot, seen through one user's regions."""

    def __init__(self, snapshot: Snapshot, user):
        self.snapshot = snapshot
        self._stamp = snapshot.published_at.timestamp()
        self._index = snapshot_index(snapshot.id, self._stamp)
        self.districts = dict(
            Region.objects.visible_to(user).filter(level=Region.Level.DISTRICT, code__in=self._index["region"])
            .order_by("code").values_list("code", "name")
        )
        self.scope = BitMap.union(BitMap(), *(self.region(code) for code in self.districts))

    @property
    def tag_codes(self) -> set[str]:
        return set(self._index["tag"])

    def tag(self, code: str) -> FrozenBitMap:
        return load_bitmap("tag", self._index["tag"][code], self._stamp)

    def region(self, code: str) -> FrozenBitMap:
        return load_bitmap("region", self._index["region"][code], self._stamp)

    def count(self, bitmap) -> int:
        return bitmap.intersection_cardinality(self.scope)

    def by_region(self, bitmap) -> list[dict]:
        return [{"region": code, "name": name, "count": bitmap.intersection_cardinality(self.region(code))}
                for code, name in self.districts.items()]


class _Resolver(BitmapResolver):
    def __init__(self, bitmaps: SnapshotBitmaps):
        self.bitmaps = bitmaps

    def everyone(self):
        return self.bitmaps.scope

    def tag(self, name):
        return self.bitmaps.tag(name)

    def compare(self, name, operator, value):
        raise ExpressionError(f"{name!r} has no scores in this snapshot", token=name)

    def call(self, function, argument):
        provider = AUDIENCE_FUNCTIONS.get(function)
        if provider is None:
            raise ExpressionError(f'{function}("{argument}"): no micro-areas or hexes are defined yet', token=argument)
        return provider(self.bitmaps, argument)


def audience_symbols(bitmaps: SnapshotBitmaps) -> dict[str, Symbol]:
    # Features are known too, so that using one says why it is refused rather than "unknown name".
    return {**feature_symbols(), **{code: Symbol(code, Type.BOOLEAN, "tag") for code in bitmaps.tag_codes}}


def parse_audience(text: str, bitmaps: SnapshotBitmaps) -> Expression:
    return parse(text, audience_symbols(bitmaps), audience=True)


def audience_bitmap(expression: Expression, bitmaps: SnapshotBitmaps) -> BitMap:
    """The audience's subscribers within the user's regions."""
    return expression.to_bitmap(_Resolver(bitmaps)) & bitmaps.scope


def current_snapshot() -> Snapshot:
    snapshot = Snapshot.objects.current()
    if snapshot is None:
        raise ExpressionError("there is no published snapshot yet; audiences can be counted after the first run")
    return snapshot


def preview_audience(*, expression: str, user, snapshot: Snapshot | None = None) -> dict:
    """Count an audience in the user's regions: total, per district, the snapshot date and the time taken."""
    started = time.perf_counter()
    bitmaps = SnapshotBitmaps(snapshot or current_snapshot(), user)
    audience = audience_bitmap(parse_audience(expression, bitmaps), bitmaps)
    return {
        "count": len(audience),
        "subscribers": len(bitmaps.scope),
        "snapshot": str(bitmaps.snapshot.as_of_date),
        "by_region": bitmaps.by_region(audience),
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
    }
