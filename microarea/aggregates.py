"""The aggregates stage: per H3 hex (res 9, 8, 7), district and basis (where subscribers live or work),
how many subscribers, how many use each product, how many have a 5G handset.

Each partition counts its own subscribers by their home and work hexes (res 9); publishing adds the
partitions up and rolls res 9 up to 8 and 7, into one long file per run (resolution, basis, region_code,
h3, metric, value) that the map and the hex API read. Counts stay per district, so what a user sees is
summed over their districts only.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from tagging.lake.store import connect
from tagging.stages import PartitionWork, Stage, register_stage, snapshot_dir, write_atomically

from .location import parent_sql

RESOLUTIONS = (9, 8, 7)
HEXES = "hexes.parquet"  # the run's published hex aggregates, beside its stage folders


def hexes_path(run_id: int) -> Path:
    return snapshot_dir(run_id) / HEXES


def compute_aggregates(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    features, location, terminals = (work.earlier_output(stage) for stage in ("features", "location", "terminals"))
    products = [c for c in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{features}')").fetchall()
                if c[0].startswith("has_") and c[1] == "BOOLEAN"]
    users = "".join(f", sum({name}::INTEGER) AS \"users:{name[4:]}\"" for name, *_ in products)
    counted = ", ".join(f'"users:{name[4:]}"' for name, *_ in products)
    per_basis = " UNION ALL ".join(
        f"SELECT '{basis}' AS basis, f.region_code, l.{basis}_h3 AS h3, count(*) AS subscribers, "
        f"sum(coalesce(t.has_5g_handset, false)::INTEGER) AS five_g_handsets{users} "
        f"FROM read_parquet('{features}') f JOIN read_parquet('{location}') l USING (subscriber_id) "
        f"LEFT JOIN read_parquet('{terminals}') t USING (subscriber_id) "
        f"WHERE l.{basis}_h3 IS NOT NULL AND f.status <> 'closed' GROUP BY ALL"
        for basis in ("home", "work")
    )
    metrics = ", ".join(["subscribers", "five_g_handsets", *([counted] if counted else [])])
    write_atomically(con, f"UNPIVOT ({per_basis}) ON {metrics} INTO NAME metric VALUE value", target)
    rows = con.execute(f"SELECT count(DISTINCT h3) FROM read_parquet('{target}')").fetchone()[0]
    return {"hexes": rows}


def publish_aggregates(run, snapshot) -> dict:
    """Add the partitions up and roll res 9 up to 8 and 7, into the run's one hex file."""
    parts = snapshot_dir(run.id) / "aggregates"
    if not any(parts.glob("part=*.parquet")):
        return {"hexes": 0}
    levels = " UNION ALL ".join(
        f"SELECT {resolution} AS resolution, basis, region_code, {parent_sql('h3', resolution) if resolution < 9 else 'h3'} AS h3, "
        f"metric, value FROM read_parquet('{parts}/part=*.parquet')"
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


register_stage(Stage("aggregates", "区域汇总 Aggregates", 50, compute_aggregates, publish=publish_aggregates))
