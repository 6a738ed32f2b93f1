"""The location stage of a snapshot run: where each subscriber lives and works, inferred from stays.

Every stay is cut into the local hours it touches, once per (subscriber, cell, hour). Per subscriber:
home is the cell with the most distinct night hours (LOCATION_NIGHT_HOURS), work the cell other than
home with the most distinct weekday office hours (LOCATION_OFFICE_HOURS), each only when seen on at
least LOCATION_MIN_DAYS distinct days, with the winner's share of those hours as its confidence; the most
frequent cell, and the radius of gyration over the cells' positions. Subscribers without enough data
are unknown, not guessed. The home and work hexes weigh every cell seen at those hours by its coverage
footprint, so a neighbouring cell reported instead of the serving one still points at the right place.

The microarea app registers this stage, and its features for tag rules, into the tagging registries.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
from django.conf import settings

from tagging.expressions import Type
from tagging.features import Feature, FeatureSource, features_from, register_feature_source
from tagging.lake.store import read_sql
from tagging.stages import PartitionWork, Stage, register_stage, write_atomically

N, B, T = Type.NUMBER, Type.BOOLEAN, Type.TEXT
_FEATURES = [
    ("home_known", B, "", "居住地已识别", "A home cell was inferred (enough nights seen at one cell)"),
    ("home_confidence", N, "0-1", "居住地置信度", "Share of the subscriber's night hours spent at the home cell"),
    ("work_known", B, "", "工作地已识别", "A work cell other than home was inferred from weekday office hours"),
    ("work_confidence", N, "0-1", "工作地置信度", "Share of the weekday office hours spent at the work cell"),
    ("home_work_km", N, "km", "职住距离", "Distance between the home and work cells' towers; NULL unless both are known"),
    ("radius_of_gyration_km", N, "km", "活动半径", "Radius of gyration over the cells seen, weighted by hours"),
    ("location_hours", N, "hours", "信令覆盖小时数", "Distinct (cell, hour) pairs seen in the window"),
]


def location_features() -> list[Feature]:
    return features_from(_FEATURES, "stays")


def parent_sql(h3: str, resolution: int) -> str:
    """The res-`resolution` parent of a res-9 H3 index held as UBIGINT: set the resolution field and mark
    the dropped digits unused (7), as h3's cell_to_parent does."""
    dropped = 9 - resolution
    digits = ((1 << (3 * dropped)) - 1) << (3 * (15 - 9))
    return (f"(({h3} & ~(15::UBIGINT << 52) & ~({digits}::UBIGINT)) | ({resolution}::UBIGINT << 52) | {digits}::UBIGINT)")


def prepare_location(run) -> dict:
    """Pin the coverage footprints of the run's cells (made once per set of cell batches)."""
    from .services.coverage import cell_coverage

    path = cell_coverage(batch_ids=run.lake_batches.get("cells", []))
    return {"location": {"coverage": str(path) if path else None}}


def _hex_choice(scores: str, weight: str, resolution: int) -> str:
    """Per subscriber, the hex (at `resolution`) with the most footprint-weighted hours of `scores`."""
    hex_sql = "f.h3" if resolution == 9 else parent_sql("f.h3", resolution)
    return f"""(SELECT subscriber_id, arg_max(h3, (score, h3)) AS h3 FROM (
                   SELECT s.subscriber_id, {hex_sql} AS h3, sum(s.{weight} * f.weight) AS score
                   FROM {scores} s JOIN coverage f USING (cell_key) WHERE s.{weight} > 0 GROUP BY ALL)
               GROUP BY subscriber_id)"""


def compute_location(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    ids = work.ids_sql
    night_from, night_to = settings.LOCATION_NIGHT_HOURS
    office_from, office_to = settings.LOCATION_OFFICE_HOURS
    min_days = settings.LOCATION_MIN_DAYS
    subscribers = read_sql("subscribers", work.lake_files["subscribers"])
    start, end = work.window_start, work.as_of + timedelta(days=1)
    stays = (f"(SELECT subscriber_id, cell_key, start_time, end_time FROM {read_sql('stays', work.lake_files['stays'])} "
             f"WHERE {ids} AND end_time > TIMESTAMPTZ '{start}' AND start_time < TIMESTAMPTZ '{end}')"
             if work.lake_files.get("stays") else
             "(SELECT NULL::BIGINT AS subscriber_id, NULL::VARCHAR AS cell_key, NULL::TIMESTAMPTZ AS start_time, "
             "NULL::TIMESTAMPTZ AS end_time WHERE false)")
    coverage = work.definitions.get("location", {}).get("coverage")
    con.execute("CREATE OR REPLACE TEMP TABLE coverage AS " + (
        f"SELECT cell_key, h3, weight FROM read_parquet('{coverage}')" if coverage else
        "SELECT NULL::VARCHAR AS cell_key, NULL::UBIGINT AS h3, NULL::DOUBLE AS weight WHERE false"))
    # Towers on a plane in km (each at its own latitude's scale): right to metres at city scale.
    cells = (f"(SELECT cell_key, lon * 111.32 * cos(radians(lat)) AS x, lat * 110.57 AS y "
             f"FROM {read_sql('cells', work.lake_files['cells'])})" if work.lake_files.get("cells") else
             "(SELECT NULL::VARCHAR AS cell_key, NULL::DOUBLE AS x, NULL::DOUBLE AS y WHERE false)")
    night = (f"(hour(bin) >= {night_from} OR hour(bin) < {night_to})" if night_from > night_to
             else f"(hour(bin) >= {night_from} AND hour(bin) < {night_to})")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE per_cell AS
        WITH bins AS (
            -- Each local hour a stay touches, once per (subscriber, cell, hour), inside the window.
            SELECT DISTINCT subscriber_id, cell_key, bin FROM (
                SELECT subscriber_id, cell_key,
                       unnest(generate_series(date_trunc('hour', start_time), end_time - INTERVAL 1 SECOND, INTERVAL 1 HOUR)) AS bin
                FROM {stays})
            WHERE bin >= TIMESTAMPTZ '{start}' AND bin < TIMESTAMPTZ '{end}'
        )
        SELECT subscriber_id, cell_key,
               count(*) FILTER (WHERE {night}) AS night_hours,
               -- A night belongs to the evening it starts: 02:00 on the 5th is the night of the 4th.
               count(DISTINCT CAST(bin - INTERVAL 12 HOUR AS DATE)) FILTER (WHERE {night}) AS night_days,
               count(*) FILTER (WHERE isodow(bin) <= 5 AND hour(bin) >= {office_from} AND hour(bin) < {office_to}) AS office_hours,
               count(DISTINCT CAST(bin AS DATE)) FILTER (WHERE isodow(bin) <= 5 AND hour(bin) >= {office_from}
                                                          AND hour(bin) < {office_to}) AS office_days,
               count(*) AS hours
        FROM bins GROUP BY ALL
    """)
    select = f"""
        WITH home AS (
            SELECT subscriber_id, sum(night_hours) AS night_total,
                   arg_max(cell_key, (night_hours, cell_key)) FILTER (WHERE night_days >= {min_days}) AS home_cell,
                   max(night_hours) FILTER (WHERE night_days >= {min_days}) AS home_hours,
                   arg_max(night_days, (night_hours, cell_key)) FILTER (WHERE night_days >= {min_days}) AS home_days,
                   arg_max(cell_key, (hours, cell_key)) AS frequent_cell, sum(hours) AS location_hours
            FROM per_cell GROUP BY subscriber_id
        ), work AS (
            SELECT p.subscriber_id, sum(p.office_hours) AS office_total,
                   arg_max(p.cell_key, (p.office_hours, p.cell_key)) FILTER (WHERE p.office_days >= {min_days}) AS work_cell,
                   max(p.office_hours) FILTER (WHERE p.office_days >= {min_days}) AS work_hours,
                   arg_max(p.office_days, (p.office_hours, p.cell_key)) FILTER (WHERE p.office_days >= {min_days}) AS work_days
            FROM per_cell p JOIN home h USING (subscriber_id)
            WHERE p.cell_key IS DISTINCT FROM h.home_cell GROUP BY p.subscriber_id
        ), spread AS (
            -- Radius of gyration (km): sqrt(E|p|^2 - |E p|^2) over the towers seen, weighted by hours.
            SELECT p.subscriber_id,
                   sqrt(greatest(sum(p.hours * (c.x * c.x + c.y * c.y)) / sum(p.hours)
                        - power(sum(p.hours * c.x) / sum(p.hours), 2)
                        - power(sum(p.hours * c.y) / sum(p.hours), 2), 0)) AS radius_of_gyration_km
            FROM per_cell p JOIN {cells} c USING (cell_key) GROUP BY p.subscriber_id
        ), night_scores AS (
            SELECT p.subscriber_id, p.cell_key, p.night_hours FROM per_cell p JOIN home h USING (subscriber_id)
            WHERE h.home_cell IS NOT NULL
        ), office_scores AS (
            SELECT p.subscriber_id, p.cell_key, p.office_hours FROM per_cell p JOIN home h USING (subscriber_id)
            JOIN work w USING (subscriber_id) WHERE w.work_cell IS NOT NULL AND p.cell_key IS DISTINCT FROM h.home_cell
        ), everyone AS (
            SELECT subscriber_id FROM {subscribers} WHERE {ids}
        )
        SELECT e.subscriber_id,
               h.home_cell IS NOT NULL AS home_known, h.home_cell, h.home_days,
               h.home_hours / NULLIF(h.night_total, 0) AS home_confidence,
               hh9.h3 AS home_h3, hh8.h3 AS home_h3_8,
               w.work_cell IS NOT NULL AS work_known, w.work_cell, w.work_days,
               w.work_hours / NULLIF(w.office_total, 0) AS work_confidence,
               wh9.h3 AS work_h3, wh8.h3 AS work_h3_8,
               sqrt(power(hc.x - wc.x, 2) + power(hc.y - wc.y, 2)) AS home_work_km,
               h.frequent_cell, s.radius_of_gyration_km, coalesce(h.location_hours, 0) AS location_hours
        FROM everyone e
        LEFT JOIN home h USING (subscriber_id) LEFT JOIN work w USING (subscriber_id) LEFT JOIN spread s USING (subscriber_id)
        LEFT JOIN {_hex_choice('night_scores', 'night_hours', 9)} hh9 USING (subscriber_id)
        LEFT JOIN {_hex_choice('night_scores', 'night_hours', 8)} hh8 USING (subscriber_id)
        LEFT JOIN {_hex_choice('office_scores', 'office_hours', 9)} wh9 USING (subscriber_id)
        LEFT JOIN {_hex_choice('office_scores', 'office_hours', 8)} wh8 USING (subscriber_id)
        LEFT JOIN {cells} hc ON hc.cell_key = h.home_cell
        LEFT JOIN {cells} wc ON wc.cell_key = w.work_cell
    """
    write_atomically(con, select, target)
    con.execute("DROP TABLE per_cell")
    con.execute("DROP TABLE coverage")
    rows, homes, works = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE home_known), count(*) FILTER (WHERE work_known) FROM read_parquet('{target}')"
    ).fetchone()
    return {"subscribers": rows, "homes_known": homes, "works_known": works}


register_stage(Stage("location", "位置归属 Location", 20, compute_location, prepare=prepare_location))
register_feature_source(FeatureSource("location", location_features))
