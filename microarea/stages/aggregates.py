"""The aggregates stage: per H3 hex (res 9, 8, 7), district and basis (where subscribers live or work),
how many subscribers; per product how many use it (developed), need it (demand) and would take it
(potential); how many carry each tag; the terminal mix by brand, tier and network.

Each partition counts its own subscribers by their home and work hexes (res 9); publishing adds the
partitions up and rolls res 9 up to 8 and 7, into one long file per run (resolution, basis, region_code,
h3, metric, value) that the map, the hex API and the micro-area stats read. A subscriber has one home
and one work hex, so any set of res-9 hexes (a micro-area) sums exactly; counts stay per district, so
what a user sees is summed over their districts only.

Metrics: subscribers, handsets (a handset seen), five_g_handsets, offnet_heavy_circle (the close circle's contacts
mostly off-net), users:<product>, demand:<product>,
potential:<product>, tag:<code>, brand:<brand>, tier:<tier>, network:<network>. The customer classes
are disjoint: developed holds the product, demand does not and has the product's demand tag, potential
has neither and has its potential tag.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from django.utils.translation import gettext_lazy as _

from tagging.lake.store import connect
from tagging.stages import PartitionWork, Stage, register_stage, snapshot_dir, stage_files, stage_sql, write_atomically
from tagging.stages.features import product_feature

from ..packing import h3_parent_sql

RESOLUTIONS = (9, 8, 7)
BASES = ("home", "work")
TERMINAL_DIMENSIONS = ("brand", "tier", "network")
HEXES = "hexes.parquet"  # the run's published hex aggregates, beside its stage folders
OFFNET_HEAVY = 0.5  # a close circle whose contacts are more than half off-net (the offnet_circle tag's default rule)


def hexes_path(run_id: int) -> Path:
    return snapshot_dir(run_id) / HEXES


def prepare_aggregates(run) -> dict:
    """Pin each product's customer-class tags, where the run computes them."""
    from tagging.models import Product

    pinned = {t["code"] for t in run.definitions.get("tags", [])}
    products = [
        {"code": code, "demand": demand if demand in pinned else None, "potential": potential if potential in pinned else None}
        for code, demand, potential in Product.objects.values_list("code", "demand_tag__code", "potential_tag__code")
    ]
    return {"aggregates": {"products": products}}


def _counted(name: str, condition: str) -> str:
    return f'sum(({condition})::INTEGER)::BIGINT AS "{name}"'


def compute_aggregates(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    features, location, terminals, tags, circles = (work.earlier_output(s) for s in ("features", "location", "terminals", "tags", "circles"))
    columns = {c[0] for c in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{features}')").fetchall()}
    tag_codes = [t["code"] for t in work.definitions.get("tags", [])]
    counts = ["count(*) AS subscribers", _counted("handsets", "handset_imei IS NOT NULL"),
              _counted("five_g_handsets", "coalesce(has_5g_handset, false)"),
              _counted("offnet_heavy_circle", f"coalesce(close_circle_offnet_share > {OFFNET_HEAVY}, false)")]
    for product in work.definitions.get("aggregates", {}).get("products", []):
        held = product_feature(product["code"])
        if held not in columns:
            continue
        demand = f'coalesce(t."{product["demand"]}", false)' if product["demand"] else "false"
        potential = f'coalesce(t."{product["potential"]}", false)' if product["potential"] else "false"
        counts += [_counted(f"users:{product['code']}", held),
                   _counted(f"demand:{product['code']}", f"NOT {held} AND {demand}"),
                   _counted(f"potential:{product['code']}", f"NOT {held} AND NOT {demand} AND {potential}")]
    counts += [_counted(f"tag:{code}", f'coalesce(t."{code}", false)') for code in tag_codes]
    placed = " UNION ALL ".join(f"SELECT '{basis}' AS basis, {basis}_h3 AS h3, * FROM everyone WHERE {basis}_h3 IS NOT NULL"
                                for basis in BASES)
    dimensions = ", ".join(f"coalesce(handset_{d}, 'unknown') AS {d}" for d in TERMINAL_DIMENSIONS)
    write_atomically(con, f"""
        WITH everyone AS (
            SELECT f.region_code, l.home_h3, l.work_h3, f.* EXCLUDE (region_code), m.handset_imei, m.has_5g_handset,
                   m.handset_brand, m.handset_tier, m.handset_network, c.close_circle_offnet_share{''.join(f', t."{c}"' for c in tag_codes)}
            FROM read_parquet('{features}') f JOIN read_parquet('{location}') l USING (subscriber_id)
            LEFT JOIN read_parquet('{terminals}') m USING (subscriber_id)
            LEFT JOIN read_parquet('{circles}') c USING (subscriber_id)
            LEFT JOIN read_parquet('{tags}') t USING (subscriber_id)
            WHERE f.status <> 'closed' AND (l.home_h3 IS NOT NULL OR l.work_h3 IS NOT NULL)
        ), placed AS ({placed}),
        counts AS (
            SELECT basis, region_code, h3, {', '.join(counts)} FROM placed t GROUP BY basis, region_code, h3
        ), mix AS (
            SELECT basis, region_code, h3, {dimensions} FROM placed WHERE handset_imei IS NOT NULL
        )
        SELECT * FROM (UNPIVOT counts ON COLUMNS(* EXCLUDE (basis, region_code, h3)) INTO NAME metric VALUE value)
        WHERE value > 0
        UNION ALL
        SELECT basis, region_code, h3, dimension || ':' || value AS metric, count(*) AS value
        FROM (UNPIVOT mix ON {', '.join(TERMINAL_DIMENSIONS)} INTO NAME dimension VALUE value)
        GROUP BY basis, region_code, h3, dimension, value
    """, target)
    rows = con.execute(f"SELECT count(DISTINCT h3) FROM read_parquet('{target}')").fetchone()[0]
    return {"hexes": rows}


def publish_aggregates(run, snapshot) -> dict:
    """Add the partitions up and roll res 9 up to 8 and 7, into the run's one hex file."""
    if not stage_files(run.id, "aggregates"):
        return {"hexes": 0}
    levels = " UNION ALL ".join(
        f"SELECT {resolution} AS resolution, basis, region_code, {h3_parent_sql('h3', resolution) if resolution < 9 else 'h3'} AS h3, "
        f"metric, value FROM {stage_sql(run.id, 'aggregates')}"
        for resolution in RESOLUTIONS
    )
    con = connect()
    try:
        write_atomically(con, f"SELECT resolution, basis, region_code, h3, metric, sum(value)::BIGINT AS value "
                              f"FROM ({levels}) GROUP BY ALL ORDER BY resolution, basis, metric, h3", hexes_path(run.id))
        (count,) = con.execute(f"SELECT count(DISTINCT h3) FROM read_parquet('{hexes_path(run.id)}') WHERE resolution = 9").fetchone()
    finally:
        con.close()
    return {"hexes": count}


register_stage(Stage("aggregates", _("Aggregates"), 50, compute_aggregates, prepare=prepare_aggregates,
                     publish=publish_aggregates))
