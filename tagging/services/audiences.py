"""Audiences: expressions over tags (and areas, hexes, scores) as bitmap algebra on a published snapshot.

Published bitmaps never change, so each is deserialized once per process and kept by key; a preview
is then a handful of roaring-bitmap operations, milliseconds even at 10 M subscribers.
"""

from __future__ import annotations

import difflib
import operator
import time
from collections.abc import Callable
from functools import lru_cache

import duckdb
import numpy as np
from django.conf import settings
from pyroaring import BitMap, FrozenBitMap

from ..bitmaps import GRADES, to_bitmap
from ..expressions import BitmapResolver, Expression, ExpressionError, Symbol, Type, parse
from ..lake import store
from ..models import Product, Region, RegionSnapshot, ScoreSnapshot, Snapshot, TagDefinition, TagSnapshot
from ..stages import stage_files
from ..stages.features import feature_symbols, product_feature

# Function name -> (the user's snapshot bitmaps, argument) -> bitmap of subscribers, raising
# ExpressionError when the argument names nothing the user may use. holds("...") is defined below;
# area("...") and hex("...") come from the micro-area app, which registers them in ready().
AUDIENCE_FUNCTIONS: dict[str, Callable[["SnapshotBitmaps", str], BitMap]] = {}


def stage_members(run_id: int, stage: str, condition: str, params: dict | None = None) -> FrozenBitMap:
    """The subscribers of a run's stage files (one row per subscriber) for whom the SQL condition holds;
    empty when the run has no such files or the files lack a column it names (made before it existed)."""
    files = stage_files(run_id, stage)
    if not files:
        return FrozenBitMap()
    con = store.reader()
    try:
        ids = con.execute(f"SELECT subscriber_id FROM read_parquet({store.files_sql(files)}) WHERE {condition}",
                          params or {}).fetchnumpy()["subscriber_id"]
    except duckdb.BinderException:
        return FrozenBitMap()
    finally:
        con.close()
    return FrozenBitMap(to_bitmap(np.asarray(ids)))


@lru_cache(maxsize=256)
def holding(run_id: int, product_code: str) -> FrozenBitMap:
    """The subscribers holding a product on the run's as-of date (nobody, for a product that came after
    the run). A run's files never change: kept."""
    return stage_members(run_id, "features", f'"{product_feature(product_code)}"')


def holds_audience(bitmaps: "SnapshotBitmaps", argument: str) -> BitMap:
    """holds("broadband"): the subscribers holding the product (by code) in the snapshot."""
    codes = list(Product.objects.values_list("code", flat=True))
    if argument not in codes:
        close = difflib.get_close_matches(argument, codes, n=3)
        hint = f"; did you mean {', '.join(close)}" if close else ""
        raise ExpressionError(f'holds("{argument}"): no product of that code{hint}', token=argument)
    return holding(bitmaps.snapshot.run_id, argument)


AUDIENCE_FUNCTIONS["holds"] = holds_audience


@lru_cache(maxsize=4096)
def load_bitmap(model: str, pk: int, published: float) -> FrozenBitMap:
    # `published` is part of the key so that a re-used primary key (a test database) is never mistaken.
    table = {"tag": TagSnapshot, "region": RegionSnapshot, "score": ScoreSnapshot}[model]
    return FrozenBitMap.deserialize(bytes(table.objects.values_list("bitmap", flat=True).get(pk=pk)))


@lru_cache(maxsize=64)
def snapshot_index(snapshot_id: int, published: float) -> dict[str, dict[str, int]]:
    return {
        "tag": dict(TagSnapshot.objects.filter(snapshot_id=snapshot_id).values_list("tag__code", "id")),
        "region": dict(RegionSnapshot.objects.filter(snapshot_id=snapshot_id).values_list("region__code", "id")),
        "score": {f"{code}={grade}": pk for code, grade, pk in
                  ScoreSnapshot.objects.filter(snapshot_id=snapshot_id).values_list("code", "grade", "id")},
    }


@lru_cache(maxsize=64)
def _scope(snapshot_id: int, published: float, districts: tuple[str, ...]) -> FrozenBitMap:
    """The subscribers of these districts in the snapshot: one union per set of districts, not per question."""
    index = snapshot_index(snapshot_id, published)["region"]
    return FrozenBitMap(BitMap.union(BitMap(), *(load_bitmap("region", index[code], published) for code in districts)))


@lru_cache(maxsize=64)
def _tag_counts(snapshot_id: int, published: float, districts: tuple[str, ...]) -> dict[str, int]:
    """Every tag's members in these districts: the same for every question asked of the snapshot."""
    scope = _scope(snapshot_id, published, districts)
    return {code: scope.intersection_cardinality(load_bitmap("tag", pk, published))
            for code, pk in snapshot_index(snapshot_id, published)["tag"].items()}


@lru_cache(maxsize=64)
def _scope_revenue(snapshot_id: int, run_id: int, published: float, districts: tuple[str, ...]) -> float:
    return run_revenue(run_id).total(_scope(snapshot_id, published, districts))


@lru_cache(maxsize=64)
def _feature_symbols(snapshot_id: int, published: float) -> dict[str, Symbol]:
    # Features are known to audiences only to say why one is refused; building the catalogue (a query of the
    # products) once per snapshot keeps it out of every count.
    return feature_symbols()


class Revenue:
    """Each subscriber's monthly revenue in one run (the value stage's `monthly_revenue`), summed over bitmaps: a
    dense vector indexed by subscriber id where ids are dense (a gather, 20 ms for 5 M members), sorted ids and a
    search where they are not."""

    def __init__(self, ids: np.ndarray, amounts: np.ndarray):
        self.grand_total = float(amounts.sum())
        self.dense = bool(len(ids)) and int(ids[-1]) < 4 * len(ids) + 1000
        if self.dense:
            self.by_id = np.zeros(int(ids[-1]) + 1, dtype=np.float64)
            self.by_id[ids] = amounts
        else:
            self.ids, self.amounts = ids, amounts

    def total(self, bitmap) -> float:
        members = np.frombuffer(bitmap.to_array(), dtype=np.uint32)
        if self.dense:
            return float(self.by_id[members[members < len(self.by_id)]].sum())
        if not len(self.ids):
            return 0.0
        found = np.minimum(np.searchsorted(self.ids, members), len(self.ids) - 1)
        return float(self.amounts[found[self.ids[found] == members]].sum())


@lru_cache(maxsize=4)
def run_revenue(run_id: int) -> Revenue:
    """A run's revenue vector (nobody's, for a run made before the value stage existed). A run's files never change."""
    files = stage_files(run_id, "value")
    if not files:
        return Revenue(np.zeros(0, dtype=np.int64), np.zeros(0))
    con = store.reader()
    try:
        rows = con.execute(f"SELECT subscriber_id, monthly_revenue FROM read_parquet({store.files_sql(files)}) "
                           "WHERE monthly_revenue > 0 ORDER BY subscriber_id").fetchnumpy()
    finally:
        con.close()
    return Revenue(np.asarray(rows["subscriber_id"]), np.asarray(rows["monthly_revenue"], dtype=np.float64))


def revenue_shown(amount: float, everyone: float, count: int | str, *, rounded: bool) -> dict:
    """An audience's monthly revenue and its share of the districts' as a user sees them: suppressed (None) with a
    suppressed count; to two significant figures with a rounded count, so that two audiences a few subscribers apart
    do not tell those few's spend; to the yuan otherwise."""
    if isinstance(count, str):
        return {"monthly_revenue": None, "revenue_share": None}
    if rounded:
        amount = float(f"{amount:.2g}")
    return {"monthly_revenue": round(amount), "revenue_share": round(amount / everyone, 4) if everyone else None}


class SnapshotBitmaps:
    """The bitmaps of one published snapshot, seen through one user's regions."""

    def __init__(self, snapshot: Snapshot, user):
        self.snapshot = snapshot
        self.published = snapshot.published_at.timestamp()
        self._index = snapshot_index(snapshot.id, self.published)
        self.districts = dict(
            Region.objects.visible_to(user).districts().filter(code__in=self._index["region"])
            .order_by("code").values_list("code", "name")
        )
        self.scope = _scope(snapshot.id, self.published, tuple(self.districts))
        # Sales staff and field teams see small counts as the map shows them: suppressed (see disclosed()).
        self.exact = user.has_perm("tagging.view_small_counts")

    def revenue(self, bitmap) -> float:
        return run_revenue(self.snapshot.run_id).total(bitmap)

    @property
    def scope_revenue(self) -> float:
        return _scope_revenue(self.snapshot.id, self.snapshot.run_id, self.published, tuple(self.districts))

    @property
    def tag_codes(self) -> set[str]:
        return set(self._index["tag"])

    def tag(self, code: str) -> FrozenBitMap:
        return load_bitmap("tag", self._index["tag"][code], self.published)

    @property
    def score_codes(self) -> set[str]:
        return {key.split("=", 1)[0] for key in self._index["score"]}

    def score(self, code: str, grade: int) -> FrozenBitMap:
        """One grade of a graded score (a propensity decile); empty when nobody has it."""
        pk = self._index["score"].get(f"{code}={grade}")
        return load_bitmap("score", pk, self.published) if pk else FrozenBitMap()

    def region(self, code: str) -> FrozenBitMap:
        return load_bitmap("region", self._index["region"][code], self.published)

    def count(self, bitmap) -> int:
        return bitmap.intersection_cardinality(self.scope)

    def tag_counts(self) -> dict[str, int]:
        """Each tag's members in the user's districts."""
        return _tag_counts(self.snapshot.id, self.published, tuple(self.districts))

    def by_region(self, bitmap) -> list[dict]:
        return [{"region": code, "name": name, "count": bitmap.intersection_cardinality(self.region(code))}
                for code, name in self.districts.items()]


_OPERATORS = {"=": operator.eq, "<>": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class _Resolver(BitmapResolver):
    def __init__(self, bitmaps: SnapshotBitmaps):
        self.bitmaps = bitmaps

    def everyone(self):
        return self.bitmaps.scope

    def tag(self, name):
        return self.bitmaps.tag(name)

    def compare(self, name, operator, value):
        if name not in self.bitmaps.score_codes:
            raise ExpressionError(f"{name!r} has no scores in this snapshot", token=name)
        grades = [g for g in GRADES if _OPERATORS[operator](g, value)]
        return BitMap.union(BitMap(), *(self.bitmaps.score(name, g) for g in grades))

    def call(self, function, argument):
        provider = AUDIENCE_FUNCTIONS.get(function)
        if provider is None:
            raise ExpressionError(f'{function}("{argument}"): no micro-areas or hexes are defined yet', token=argument)
        return provider(self.bitmaps, argument)


def audience_symbols(bitmaps: SnapshotBitmaps) -> dict[str, Symbol]:
    # Features are known too, so that using one says why it is refused rather than "unknown name"; graded
    # features (propensity deciles) are scores already, whose bitmaps a snapshot may or may not have.
    return {**_feature_symbols(bitmaps.snapshot.id, bitmaps.published),
            **{code: Symbol(code, Type.BOOLEAN, "tag") for code in bitmaps.tag_codes},
            **{code: Symbol(code, Type.NUMBER, "score") for code in bitmaps.score_codes}}


def parse_audience(text: str, bitmaps: SnapshotBitmaps) -> Expression:
    return parse(text, audience_symbols(bitmaps), audience=True, functions=AUDIENCE_FUNCTIONS)


def audience_bitmap(expression: Expression, bitmaps: SnapshotBitmaps) -> BitMap:
    """The audience's subscribers within the user's regions."""
    return expression.to_bitmap(_Resolver(bitmaps)) & bitmaps.scope


def disclosed(count: int, minimum: int) -> int | str:
    """A count narrowed to a place as a user without view_small_counts sees it: "< minimum" below AREA_MIN_COUNT,
    otherwise rounded to a multiple of it, so that two expressions differing by a few subscribers (say
    `area("X") and not t` against `area("X")`) give counts whose difference does not tell how many they are."""
    return f"< {minimum}" if count < minimum else minimum * max(1, round(count / minimum))


def _narrowed(parsed: Expression, bitmaps: SnapshotBitmaps) -> int | None:
    """The minimum counts are shown at, when the audience is narrowed by area() for a user who sees suppressed
    counts; None when its counts are exact."""
    return settings.AREA_MIN_COUNT if not bitmaps.exact and any(f == "area" for f, _ in parsed.functions) else None


def current_snapshot() -> Snapshot:
    snapshot = Snapshot.objects.current()
    if snapshot is None:
        raise ExpressionError("there is no published snapshot yet; audiences can be counted after the first run")
    return snapshot


def preview_audience(*, expression: str, user, snapshot: Snapshot | None = None) -> dict:
    """Count an audience in the user's regions: total, per district, the snapshot date and the time taken."""
    started = time.perf_counter()
    bitmaps = SnapshotBitmaps(snapshot or current_snapshot(), user)
    parsed = parse_audience(expression, bitmaps)
    audience = audience_bitmap(parsed, bitmaps)
    minimum = _narrowed(parsed, bitmaps)
    shown = (lambda n: disclosed(n, minimum)) if minimum else int
    return {
        "count": shown(len(audience)),
        "subscribers": len(bitmaps.scope),
        "snapshot": str(bitmaps.snapshot.as_of_date),
        "by_region": [{**row, "count": shown(row["count"])} for row in bitmaps.by_region(audience)],
        **revenue_shown(bitmaps.revenue(audience), bitmaps.scope_revenue, shown(len(audience)), rounded=bool(minimum)),
        "suppressed_below": minimum,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
    }


def profile_audience(*, expression: str, user, snapshot: Snapshot | None = None) -> dict:
    """Who an audience are (人群画像): for every other tag of the snapshot, its share in the audience
    against its share in all the user's subscribers, and their ratio as a target group index (TGI: 100
    means as common as everywhere, 200 twice as common). Most over-represented first."""
    started = time.perf_counter()
    bitmaps = SnapshotBitmaps(snapshot or current_snapshot(), user)
    parsed = parse_audience(expression, bitmaps)
    audience = audience_bitmap(parsed, bitmaps)
    size, everyone = len(audience), len(bitmaps.scope)
    minimum = _narrowed(parsed, bitmaps)
    names = {code: (name, name_en, category) for code, name, name_en, category in TagDefinition.objects.filter(
        code__in=bitmaps.tag_codes).values_list("code", "name", "name_en", "category")}
    bases = bitmaps.tag_counts()
    if minimum:  # shares and indexes from the counts as shown, so that none tells more than the counts do
        size = disclosed(size, minimum)
    rows = []
    for code in sorted(bitmaps.tag_codes - parsed.references):  # the audience's own tags say nothing new
        count, base = audience.intersection_cardinality(bitmaps.tag(code)), bases[code]
        if minimum:
            count = disclosed(count, minimum)
        countable = isinstance(count, int) and isinstance(size, int) and size > 0
        share = count / size if countable else None
        base_share = base / everyone if everyone else None
        name, name_en, category = names.get(code, (code, "", ""))
        rows.append({"tag": code, "name": name, "name_en": name_en, "category": category, "count": count,
                     "share": share, "base_share": base_share,
                     "index": round(100 * share / base_share) if share is not None and base_share else None})
    rows.sort(key=lambda row: (row["index"] is None, -(row["index"] or 0), row["tag"]))
    return {"count": size, "subscribers": everyone, "snapshot": str(bitmaps.snapshot.as_of_date), "tags": rows,
            **revenue_shown(bitmaps.revenue(audience), bitmaps.scope_revenue, size, rounded=bool(minimum)),
            "suppressed_below": minimum,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 2)}
