"""Reads of the published hex aggregates and location files, summed over the user's districts.

Counts under the minimum (AREA_MIN_COUNT) are suppressed (None) in everything returned here, and so is
any share whose count is suppressed: these are what sales users see.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import h3
import numpy as np
from django.utils.translation import gettext_lazy as _

from tagging.lake import store
from tagging.models import Product, Region, Snapshot, TagDefinition
from tagging.stages import stage_files, stage_sql
from tagging.stages.features import product_feature

from .models import MicroArea
from .packing import h3_parent_sql
from .stages.aggregates import TERMINAL_DIMENSIONS, hexes_path

# Map metrics: the hex file's metric each counts ({product} filled in), and whether it is a share of subscribers.
HEX_METRICS = {
    "subscribers": ("subscribers", False, _("Subscribers")),
    "product_users": ("users:{product}", False, _("Developed (product users)")),
    "penetration": ("users:{product}", True, _("Product penetration")),
    "demand": ("demand:{product}", False, _("Demand customers")),
    "potential": ("potential:{product}", False, _("Potential customers")),
    "five_g_share": ("five_g_handsets", True, _("5G-handset share")),
    "offnet_circle_share": ("offnet_heavy_circle", True, _("Circle mostly off-net (share)")),
    # The interest tag (the tag library's interest family) held by most subscribers of the hex, as its share.
    "leading_interest": ("tag:*interest", True, _("Leading interest (share)")),
    "campaign_targets": ("targets", False, _("Campaign targets")),
}
PRODUCT_METRICS = {name for name, (counted, _, _) in HEX_METRICS.items() if "{product}" in counted}
LIST_METRICS = {"campaign_targets"}  # counted from a target list (?campaign=), not from the run's hex file


@dataclass(frozen=True)
class TargetList:
    """A list of subscribers to show by where they live: a campaign's targets."""

    id: int
    label: str
    members_sql: str  # a relation with a subscriber_id column


@dataclass(frozen=True)
class TargetListSource:
    """Where the map finds target lists. Campaigns register theirs (imports run campaigns -> microarea, so the
    map cannot ask them itself); both functions see only what the user may."""

    listed: Callable[[object], list[TargetList]]  # user -> the lists they may show
    find: Callable[[object, int], TargetList | None]  # (user, id) -> that list, or None when it is not theirs


TARGET_LISTS: dict[str, TargetListSource] = {}  # "campaign" -> source
TOP_TAGS = 10


def visible_districts(user) -> list[str]:
    return list(Region.objects.visible_to(user).districts().values_list("code", flat=True))


def res9_hexes(cell: str) -> np.ndarray:
    """The res-9 hexes a hex of resolution 9 or coarser covers, as the aggregates hold them."""
    return np.array([h3.str_to_int(c) for c in h3.cell_to_children(cell, 9)], dtype="<u8")


def _suppressed(count: int | None, minimum: int) -> int | None:
    return None if count is None or count < minimum else int(count)


def _share(part: int | None, whole: int | None, minimum: int) -> float | None:
    if _suppressed(part, minimum) is None or not _suppressed(whole, minimum):
        return None
    return round(part / whole, 4)


def _listed_by_hex_sql(snapshot: Snapshot, target_list: TargetList, basis: str, resolution: int) -> str:
    """Members of the list per hex where they live (or work) in the snapshot, among the subscribers the run's hex
    file counts for the districts ($districts): not closed, placed."""
    placed = f"l.{basis}_h3"
    return f"""
        SELECT {h3_parent_sql(placed, resolution) if resolution < 9 else placed} AS h3, count(*) AS listed
        FROM {target_list.members_sql} m JOIN {stage_sql(snapshot.run_id, "location")} l USING (subscriber_id)
        JOIN {stage_sql(snapshot.run_id, "features")} f USING (subscriber_id)
        WHERE {placed} IS NOT NULL AND f.status <> 'closed' AND f.region_code IN (SELECT unnest($districts::VARCHAR[]))
        GROUP BY 1"""


def hex_metric(*, snapshot: Snapshot, user, resolution: int, metric: str, basis: str = "home",
               product: str | None = None, target_list: TargetList | None = None, minimum: int = 5) -> list[dict]:
    """One row per hex with subscribers in the user's districts: h3 (string), subscribers and the metric's
    value; hexes under `minimum` subscribers keep their place with both suppressed (None). A list metric
    (campaign targets) counts the members of `target_list` there."""
    path = hexes_path(snapshot.run_id)
    districts = visible_districts(user)
    if not path.exists() or not districts:
        return []
    counted, is_share, _ = HEX_METRICS[metric]
    wanted = counted.format(product=product)
    params = {"resolution": resolution, "basis": basis, "districts": districts}
    interests = interest_tags() if metric == "leading_interest" else {}
    con = store.reader()
    try:
        if metric in LIST_METRICS:
            rows = con.execute(f"""
                WITH living AS (
                    SELECT h3, sum(value) AS subscribers FROM read_parquet('{path}')
                    WHERE resolution = $resolution AND basis = $basis AND metric = 'subscribers'
                      AND region_code IN (SELECT unnest($districts::VARCHAR[]))
                    GROUP BY h3
                ), listed AS ({_listed_by_hex_sql(snapshot, target_list, basis, resolution)})
                SELECT h3, subscribers, coalesce(listed, 0) FROM living LEFT JOIN listed USING (h3) ORDER BY h3
            """, params).fetchall()
        elif metric == "leading_interest":
            rows = con.execute(f"""
                SELECT h3, max(value) FILTER (WHERE metric = 'subscribers') AS subscribers,
                       coalesce(max(counted), 0), arg_max(metric, counted) FILTER (WHERE counted IS NOT NULL)
                FROM (SELECT h3, metric, value, CASE WHEN metric <> 'subscribers' THEN value END AS counted FROM (
                    SELECT h3, metric, sum(value) AS value FROM read_parquet('{path}')
                    WHERE resolution = $resolution AND basis = $basis AND region_code IN (SELECT unnest($districts::VARCHAR[]))
                      AND metric IN (SELECT unnest($metrics::VARCHAR[])) GROUP BY h3, metric))
                GROUP BY h3 ORDER BY h3
            """, {**params, "metrics": ["subscribers", *(f"tag:{code}" for code in interests)]}).fetchall()
        else:
            rows = con.execute(f"""
                SELECT h3, sum(value) FILTER (WHERE metric = 'subscribers') AS subscribers,
                       coalesce(sum(value) FILTER (WHERE metric = $wanted), 0) AS counted, NULL
                FROM read_parquet('{path}')
                WHERE resolution = $resolution AND basis = $basis AND region_code IN (SELECT unnest($districts::VARCHAR[]))
                  AND metric IN ('subscribers', $wanted)
                GROUP BY h3 ORDER BY h3
            """, {**params, "wanted": wanted}).fetchall()
    finally:
        con.close()
    result = []
    for cell, subscribers, count, *leading in rows:
        subscribers = int(subscribers or 0)
        if subscribers < minimum:
            value, shown = None, None
        elif is_share:
            value, shown = round(count / subscribers, 4), subscribers
        else:
            value, shown = int(count), subscribers
        row = {"h3": h3.int_to_str(int(cell)), "subscribers": shown, "value": value, "suppressed": value is None}
        if interests:  # which interest leads is shown only where the hex's counts are
            code = (leading[0] or "")[4:] if value else ""
            row["leading"] = {"code": code, "name": interests[code][0], "name_en": interests[code][1]} if code in interests else None
        result.append(row)
    return result


def interest_tags() -> dict[str, tuple[str, str]]:
    """The tag library's interest family: code -> (name, English name)."""
    return {code: (name, name_en) for code, name, name_en in TagDefinition.objects.filter(
        category=TagDefinition.Category.INTEREST, enabled=True).values_list("code", "name", "name_en")}


def _sums(snapshot: Snapshot, districts: list[str], hexes: np.ndarray) -> dict[str, dict[str, int]]:
    """basis -> metric -> count over the res-9 `hexes` and the districts."""
    path = hexes_path(snapshot.run_id)
    sums: dict[str, dict[str, int]] = defaultdict(dict)
    if not path.exists() or not districts or not len(hexes):
        return sums
    con = store.reader()
    try:
        rows = con.execute(f"""
            SELECT basis, metric, sum(value)::BIGINT FROM read_parquet('{path}')
            WHERE resolution = 9 AND region_code IN (SELECT unnest($districts::VARCHAR[]))
              AND h3 IN (SELECT unnest($hexes::UBIGINT[]))
            GROUP BY basis, metric
        """, {"districts": districts, "hexes": hexes.tolist()}).fetchall()
    finally:
        con.close()
    for basis, metric, value in rows:
        sums[basis][metric] = int(value)
    return sums


def _moves(snapshot: Snapshot, previous: Snapshot, districts: list[str], hexes: np.ndarray) -> dict[str, int]:
    """Subscribers of the districts whose home moved into or out of the hexes between the two snapshots
    (home known in both)."""
    if not stage_files(snapshot.run_id, "location") or not stage_files(previous.run_id, "location") or not districts:
        return {"moved_in": 0, "moved_out": 0}
    con = store.reader()
    try:
        moved_in, moved_out = con.execute(f"""
            WITH area AS (SELECT unnest($hexes::UBIGINT[]) AS h3),
            now AS (
                SELECT l.subscriber_id, l.home_h3 IN (SELECT h3 FROM area) AS inside
                FROM {stage_sql(snapshot.run_id, "location")} l JOIN {stage_sql(snapshot.run_id, "features")} f USING (subscriber_id)
                WHERE l.home_h3 IS NOT NULL AND f.region_code IN (SELECT unnest($districts::VARCHAR[]))
            ), before AS (
                SELECT subscriber_id, home_h3 IN (SELECT h3 FROM area) AS inside
                FROM {stage_sql(previous.run_id, "location")} WHERE home_h3 IS NOT NULL
            )
            SELECT count(*) FILTER (WHERE n.inside AND NOT b.inside), count(*) FILTER (WHERE b.inside AND NOT n.inside)
            FROM now n JOIN before b USING (subscriber_id)
        """, {"districts": districts, "hexes": hexes.tolist()}).fetchone()
    finally:
        con.close()
    return {"moved_in": int(moved_in), "moved_out": int(moved_out)}


def _listed_in(snapshot: Snapshot, districts: list[str], hexes: np.ndarray, target_list: TargetList) -> int:
    """Members of the list living in the res-9 `hexes` in the snapshot, among the districts' subscribers."""
    if not districts or not len(hexes) or not stage_files(snapshot.run_id, "location"):
        return 0
    con = store.reader()
    try:
        (count,) = con.execute(
            f"SELECT coalesce(sum(listed), 0) FROM ({_listed_by_hex_sql(snapshot, target_list, 'home', 9)}) "
            f"WHERE h3 IN (SELECT unnest($hexes::UBIGINT[]))", {"districts": districts, "hexes": hexes.tolist()}).fetchone()
    finally:
        con.close()
    return int(count)


def area_stats(*, snapshot: Snapshot, user, hexes: np.ndarray, product: Product | None = None,
               target_list: TargetList | None = None, minimum: int = 5) -> dict:
    """What the map's panel shows for a hex or micro-area (given as its res-9 hexes), for the user's districts:
    subscribers living and working there, every product's users and penetration, the chosen product's
    developed/demand/potential customers, a campaign's targets living there, the terminal mix, the top tags,
    and the change since the previous snapshot (including subscribers who moved their home in or out)."""
    districts = visible_districts(user)
    sums = _sums(snapshot, districts, hexes)
    home, work = sums.get("home", {}), sums.get("work", {})
    living = home.get("subscribers", 0)
    previous = snapshot.previous()
    before = _sums(previous, districts, hexes).get("home", {}) if previous else None

    def change(metric: str) -> int | None:
        if before is None:
            return None
        now, then = home.get(metric, 0), before.get(metric, 0)
        # A difference between two shown counts reveals nothing more; one between suppressed ones could.
        return now - then if _suppressed(now, minimum) is not None and _suppressed(then, minimum) is not None else None

    products = [
        {"code": p.code, "name": p.name, "name_en": p.name_en,
         "users": _suppressed(home.get(f"users:{p.code}", 0), minimum),
         "penetration": _share(home.get(f"users:{p.code}", 0), living, minimum)}
        for p in Product.objects.order_by("code")
    ]
    classes = None
    if product is not None:
        classes = {"code": product.code, "name": product.name, "name_en": product.name_en,
                   "demand_tag": product.demand_tag.code if product.demand_tag else None,
                   "potential_tag": product.potential_tag.code if product.potential_tag else None}
        for name, metric in (("developed", "users"), ("demand", "demand"), ("potential", "potential")):
            count = home.get(f"{metric}:{product.code}", 0)
            classes[name] = _suppressed(count, minimum)
            classes[f"{name}_share"] = _share(count, living, minimum)
            classes[f"{name}_change"] = change(f"{metric}:{product.code}")
    handsets = home.get("handsets", 0)
    terminal_mix = {
        dimension: sorted(
            ({"value": metric.split(":", 1)[1], "subscribers": _suppressed(count, minimum),
              "share": _share(count, handsets, minimum)}
             for metric, count in home.items() if metric.startswith(f"{dimension}:")),
            key=lambda row: (-(row["subscribers"] or 0), row["value"]))
        for dimension in TERMINAL_DIMENSIONS
    }
    names = {code: (name, name_en) for code, name, name_en in TagDefinition.objects.values_list("code", "name", "name_en")}
    tagged = sorted(((m[4:], c) for m, c in home.items() if m.startswith("tag:") and c >= minimum), key=lambda t: (-t[1], t[0]))
    top_tags = [{"code": code, "name": names.get(code, (code, ""))[0], "name_en": names.get(code, (code, ""))[1],
                 "count": count, "share": _share(count, living, minimum)} for code, count in tagged[:TOP_TAGS]]
    interests = interest_tags()
    # Suppressed counts do not order the list either: they come last, by code.
    leading = sorted(((code, home.get(f"tag:{code}", 0)) for code in interests),
                     key=lambda t: (-(t[1] if t[1] >= minimum else 0), t[0]))
    return {
        "snapshot": {"id": snapshot.id, "date": str(snapshot.as_of_date)},
        "previous_snapshot": {"id": previous.id, "date": str(previous.as_of_date)} if previous else None,
        "hexes": len(hexes),
        "minimum_count": minimum,
        "subscribers": {"home": _suppressed(living, minimum), "work": _suppressed(work.get("subscribers", 0), minimum),
                        "home_change": change("subscribers")},
        "five_g_handset_share": _share(home.get("five_g_handsets", 0), living, minimum),
        "offnet_circle_share": _share(home.get("offnet_heavy_circle", 0), living, minimum),
        # The interest family, most held first (counts as every count here: suppressed below the minimum).
        "interests": [{"code": code, "name": interests[code][0], "name_en": interests[code][1],
                       "count": _suppressed(count, minimum), "share": _share(count, living, minimum)}
                      for code, count in leading],
        "product": classes,
        "target_list": ({"id": target_list.id, "label": target_list.label,
                         "targets": _suppressed(_listed_in(snapshot, districts, hexes, target_list), minimum)}
                        if target_list else None),
        "products": products,
        "terminal_mix": terminal_mix,
        "top_tags": top_tags,
        "moves": ({key: _suppressed(value, minimum) for key, value in _moves(snapshot, previous, districts, hexes).items()}
                  if previous else None),
    }


LOCATION_HISTORY_COLUMNS = ("home_known", "home_cell", "home_h3", "home_confidence", "home_days", "work_known", "work_cell",
                            "work_h3", "work_confidence", "work_days", "frequent_cell", "radius_of_gyration_km", "home_work_km")


def subscriber_locations(*, subscriber_id: int, user, limit: int = 12) -> list[dict]:
    """Where one subscriber lived and worked at each of the last snapshots, oldest first, with the user's
    micro-areas holding the home and work hexes, and whether the home moved since the entry before."""
    snapshots = list(Snapshot.objects.order_by("-as_of_date", "-id")[:limit])[::-1]
    areas = [(area.name, area.hex_array()) for area in MicroArea.objects.visible_to(user)]

    def named(cell) -> list[str]:
        if cell is None:
            return []
        return [name for name, hexes in areas if len(hexes) and hexes[min(np.searchsorted(hexes, cell), len(hexes) - 1)] == cell]

    history, home_before = [], None
    con = store.reader()
    try:
        for snapshot in snapshots:
            files = stage_files(snapshot.run_id, "location")
            if not files:
                continue
            cursor = con.execute(f"SELECT {', '.join(LOCATION_HISTORY_COLUMNS)} FROM read_parquet({store.files_sql(files)}) "
                                 f"WHERE subscriber_id = $id", {"id": subscriber_id})
            row = cursor.fetchone()
            if row is None:
                continue
            entry = dict(zip(LOCATION_HISTORY_COLUMNS, row))
            home, work = entry["home_h3"], entry["work_h3"]
            entry.update({
                "snapshot": snapshot.id, "as_of_date": str(snapshot.as_of_date),
                "home_h3": h3.int_to_str(int(home)) if home is not None else None,
                "work_h3": h3.int_to_str(int(work)) if work is not None else None,
                "home_areas": named(home), "work_areas": named(work),
                "home_moved": home_before is not None and home is not None and home != home_before,
            })
            for key in ("home_confidence", "work_confidence", "radius_of_gyration_km", "home_work_km"):
                entry[key] = round(entry[key], 3) if entry[key] is not None else None
            history.append(entry)
            home_before = home if home is not None else home_before
    finally:
        con.close()
    return history


CUSTOMER_CLASSES = ("developed", "demand", "potential")


def area_customers_sql(*, snapshot: Snapshot, user, hexes: np.ndarray, product: Product,
                       classes: tuple[str, ...]) -> tuple[str, dict] | None:
    """The subscribers of the user's districts living in `hexes` who are the product's customers of the given
    classes in the snapshot, as a relation (subscriber_id, region_code, customer_class, home_h3,
    home_confidence) with its parameters; None when the snapshot has nobody to list (no tags, or a product
    that came after it). Whom of them a list may contact is the exporter's business (the contact policy)."""
    districts = visible_districts(user)
    if not districts or not len(hexes) or not stage_files(snapshot.run_id, "tags"):
        return None
    con = store.reader()
    try:
        computed = {c[0] for c in con.execute(f"DESCRIBE SELECT * FROM {stage_sql(snapshot.run_id, 'tags')}").fetchall()}
        features = {c[0] for c in con.execute(f"DESCRIBE SELECT * FROM {stage_sql(snapshot.run_id, 'features')}").fetchall()}
    finally:
        con.close()
    held = product_feature(product.code)
    if held not in features:
        return None  # the product came after this snapshot
    demand, potential = (f'coalesce(t."{tag.code}", false)' if tag and tag.code in computed else "false"
                         for tag in (product.demand_tag, product.potential_tag))
    return f"""(
        SELECT * FROM (
            SELECT f.subscriber_id, f.region_code,
                   CASE WHEN f.{held} THEN 'developed' WHEN {demand} THEN 'demand' WHEN {potential} THEN 'potential' END
                       AS customer_class,
                   l.home_h3, l.home_confidence
            FROM {stage_sql(snapshot.run_id, "features")} f
            JOIN {stage_sql(snapshot.run_id, "location")} l USING (subscriber_id)
            JOIN {stage_sql(snapshot.run_id, "tags")} t USING (subscriber_id)
            WHERE f.status <> 'closed' AND f.region_code IN (SELECT unnest($districts::VARCHAR[]))
              AND l.home_h3 IN (SELECT unnest($hexes::UBIGINT[]))
        ) WHERE customer_class IN (SELECT unnest($classes::VARCHAR[])))""", {
        "districts": districts, "hexes": hexes.tolist(), "classes": list(classes)}
