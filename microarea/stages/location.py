"""The location stage of a snapshot run: where each subscriber lives and works, inferred from stays.

Every stay is cut into the local hours of the window it touches, counted once per (subscriber, cell,
hour) as bits of 64-bit words (integer arithmetic on hour numbers, no row per hour). Per subscriber:
home is the cell with the most distinct night hours (LOCATION_NIGHT_HOURS), work the cell other than
home with the most distinct weekday office hours (LOCATION_OFFICE_HOURS), each only when seen on at
least LOCATION_MIN_DAYS distinct days, with the winner's share of those hours as its confidence; the most
frequent cell, and the radius of gyration over the cells' positions. Subscribers without enough data
are unknown, not guessed. The home and work hexes count the hours of every cell seen at those times over
its coverage footprint's hexes, so that the cells seen around a home narrow down where it is.

The microarea app registers this stage, and its features for tag rules, into the tagging registries.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from tagging.expressions import Type
from tagging.lake.sql import empty_relation
from tagging.lake.store import read_sql
from tagging.models.reference import in_data_dir, relative_to_data
from tagging.stages import PartitionWork, Stage, local_offset_seconds, register_stage, write_atomically
from tagging.stages.features import Feature, FeatureSource, features_from, register_feature_source

from ..packing import (
    H3_DIGIT_BITS,
    HOURS_AT_CELL,
    HOURS_AT_CELL_WITH_DAYS,
    Packing,
    h3_child_sql,
    h3_last_digit_sql,
    h3_parent_sql,
)

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


# The hex choice: per res-8 hex its best res-9 child as (score, last digit); then (res-8 score, res-9 score, hex).
SCORE_AND_DIGIT = Packing((("score", 60), ("digit", H3_DIGIT_BITS)))
HEX_CHOICE = Packing((("score8", 31), ("score", 32), ("h3", 64)), sql_type="HUGEINT")


def prepare_location(run) -> dict:
    """Pin the coverage footprints of the run's cells (made once per set of cell batches)."""
    from ..services.coverage import cell_coverage

    path = cell_coverage(batch_ids=run.lake_batches.get("cells", []))
    return {"location": {"coverage": relative_to_data(path) if path else None}}


WORD = 64  # hours of the window per UBIGINT word of a subscriber's hours-at-a-cell mask
ALL_BITS = "18446744073709551615::UBIGINT"


def _word_constants(hours: set[int], words: int) -> list[int]:
    """The window's hours (numbered from its first local midnight) as one bit mask per word."""
    masks = [0] * words
    for hour in hours:
        masks[hour // WORD] |= 1 << (hour % WORD)
    return masks


def _count_sql(hours: set[int], words: int) -> str:
    """How many of these hours the subscriber spent at the cell."""
    return " + ".join(f"bit_count(w{j} & {mask}::UBIGINT)::INTEGER" for j, mask in enumerate(_word_constants(hours, words)))


def _seen_sql(hours: set[int], words: int) -> str:
    """1 when the subscriber spent any of these hours at the cell."""
    return "(" + " OR ".join(f"w{j} & {mask}::UBIGINT <> 0" for j, mask in enumerate(_word_constants(hours, words))
                             if mask) + ")::INTEGER" if hours else "0"


def _hours(start: int, end: int) -> range:
    """Hours from `start` up to `end`, wrapping past midnight when end <= start (21 to 7)."""
    return range(start, end) if start < end else range(start, end + 24)


def _hex_choice(scores: str, hours: str) -> str:
    """Per subscriber, the res-9 hex holding the most hours of `scores` among the footprints of the cells they
    were spent at, inside the res-8 hex holding the most: the res-8 choice is the better one (a sector spans
    several res-9 hexes) and the map rolls res 9 up, so the two must agree. Every hex of a footprint counts
    a cell's hours alike (where in it a phone is does not change which cell serves it)."""
    # The largest (score8, score, h3) over all res-9 hexes, in groupings instead of a window: per res-8 hex
    # its total and its best res-9 hex, then the best res-8 hex. Scores are whole hours, so keys pack:
    # within a res-8 hex the res-9 hexes differ only in their last digit, which gives the best one back from
    # its parent; ties go to the higher hex every time.
    best = SCORE_AND_DIGIT.pack_sql(score="score", digit=h3_last_digit_sql("h3"))
    child = h3_child_sql("h3_8", SCORE_AND_DIGIT.unpack_sql("best", "digit"))
    key = HEX_CHOICE.pack_sql(score8="score8", score=SCORE_AND_DIGIT.unpack_sql("best", "score"), h3="h3")
    return f"""(SELECT subscriber_id, arg_max(h3, {key}) AS h3
               FROM (
                   SELECT subscriber_id, score8, best, {child} AS h3 FROM (
                       SELECT subscriber_id, {h3_parent_sql('h3', 8)} AS h3_8, sum(score) AS score8, max({best}) AS best
                       FROM (
                           SELECT s.subscriber_id, f.h3, sum(s.{hours})::BIGINT AS score
                           FROM {scores} s JOIN coverage f USING (cell) WHERE s.{hours} > 0
                           GROUP BY s.subscriber_id, f.h3)
                       GROUP BY ALL))
               GROUP BY subscriber_id)"""


def compute_location(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    ids = work.ids_sql
    min_days = settings.LOCATION_MIN_DAYS
    night = set(h % 24 for h in _hours(*settings.LOCATION_NIGHT_HOURS))
    office = set(h % 24 for h in _hours(*settings.LOCATION_OFFICE_HOURS))
    offset = local_offset_seconds(work.as_of)
    first_day = (work.window_start - date(1970, 1, 1)).days  # local day numbers since 1970-01-01 (a Thursday)
    days, first_hour = work.window_days, first_day * 24
    hours, words = days * 24, (days * 24 + WORD - 1) // WORD
    in_window = range(hours)
    # A night belongs to the evening it starts: hours from noon on count for that day's night, earlier
    # ones for the night before (02:00 on the 5th is the night of the 4th); day -1's night ends in the window.
    nights = [{24 * day + h for h in night if h >= 12} | {24 * (day + 1) + h for h in night if h < 12}
              for day in range(-1, days)]
    office_days = [{24 * day + h for h in office} for day in range(days) if (first_day + day + 3) % 7 < 5]
    counted = {
        "night_hours": _count_sql({h for h in in_window if h % 24 in night}, words),
        "night_days": " + ".join(_seen_sql(n & set(in_window), words) for n in nights),
        "office_hours": _count_sql(set().union(*office_days), words),
        "office_days": " + ".join(_seen_sql(o, words) for o in office_days) or "0",
        "hours": " + ".join(f"bit_count(w{j})::INTEGER" for j in range(words)),
    }
    # Word j of a stay: its hours h0..h1 (inclusive, numbered in the window) that fall in 64j..64j+63.
    stay_words = ", ".join(
        f"CASE WHEN greatest(h0 - {WORD * j}, 0) <= least(h1 - {WORD * j}, {WORD - 1}) THEN "
        f"({ALL_BITS} >> ({WORD - 1} - least(h1 - {WORD * j}, {WORD - 1}) + greatest(h0 - {WORD * j}, 0))::UBIGINT)"
        f" << greatest(h0 - {WORD * j}, 0)::UBIGINT ELSE 0::UBIGINT END AS w{j}"
        for j in range(words))
    subscribers = read_sql("subscribers", work.lake_files["subscribers"])
    stays = (f"(SELECT subscriber_id, cell_key, start_time, end_time FROM {read_sql('stays', work.lake_files['stays'])} "
             f"WHERE {ids} AND end_time > TIMESTAMPTZ '{work.window_start}' AND start_time < TIMESTAMPTZ '{work.as_of + timedelta(days=1)}')"
             if work.lake_files.get("stays") else
             empty_relation(subscriber_id="BIGINT", cell_key="VARCHAR", start_time="TIMESTAMPTZ", end_time="TIMESTAMPTZ"))
    # Cells as integers numbered in key order (grouping on an integer is a third faster than on the key, and
    # ties break as they would on the key), with the towers on a plane in km (each at its own latitude's
    # scale: right to metres at city scale). Stays name known cells only: ingest refuses the others.
    con.execute("CREATE OR REPLACE TEMP TABLE cell_ids AS " + (
        f"SELECT row_number() OVER (ORDER BY cell_key)::INTEGER AS cell, cell_key, lon * 111.32 * cos(radians(lat)) AS x, "
        f"lat * 110.57 AS y FROM {read_sql('cells', work.lake_files['cells'])}" if work.lake_files.get("cells") else
        "SELECT * FROM " + empty_relation(cell="INTEGER", cell_key="VARCHAR", x="DOUBLE", y="DOUBLE")))
    coverage = work.definitions.get("location", {}).get("coverage")
    con.execute("CREATE OR REPLACE TEMP TABLE coverage AS " + (
        f"SELECT i.cell, f.h3 FROM read_parquet('{in_data_dir(coverage)}') f "
        f"JOIN cell_ids i USING (cell_key)" if coverage else
        "SELECT * FROM " + empty_relation(cell="INTEGER", h3="UBIGINT")))
    # Each stay becomes the hours of the window it touches, as bits of a few 64-bit words; OR-ing them per
    # (subscriber, cell) counts every hour once however many stays touch it, in one grouping, and the
    # night, office and day counts are then bit counts against constant masks of the window's hours.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE per_cell AS
        WITH hours AS (
            SELECT s.subscriber_id, i.cell,
                   greatest((epoch_us(s.start_time) + {offset * 10 ** 6}) // {3600 * 10 ** 6} - {first_hour}, 0) AS h0,
                   least((epoch_us(s.end_time) + {offset * 10 ** 6 - 1}) // {3600 * 10 ** 6} - {first_hour}, {hours - 1}) AS h1
            FROM {stays} s JOIN cell_ids i USING (cell_key)
        ), masks AS (
            SELECT subscriber_id, cell, {', '.join(f'bit_or(w{j}) AS w{j}' for j in range(words))}
            FROM (SELECT subscriber_id, cell, {stay_words} FROM hours)
            GROUP BY subscriber_id, cell
        )
        SELECT m.subscriber_id, m.cell, c.x, c.y, {', '.join(f'{sql} AS {name}' for name, sql in counted.items())}
        FROM masks m JOIN cell_ids c USING (cell)
        -- A stay outside the window's local hours (h1 < h0) has no bits; a cell seen only so is dropped here,
        -- after grouping, rather than each stay filtered before it (which computed the hours twice).
        WHERE {' OR '.join(f'w{j} <> 0' for j in range(words))}
    """)
    # arg_max keys pack (hours, cell) into one BIGINT (microarea/packing.py): most hours first, ties to the
    # higher cell number, as a (hours, cell) pair would order them, at a fraction of the cost of comparing pairs. Work is the
    # best office cell other than home, so it is one of the two best office cells: both are kept, packed
    # with their days, in the same pass that finds home.
    night_key = HOURS_AT_CELL.pack_sql(hours="night_hours", cell="cell")
    office_key = HOURS_AT_CELL_WITH_DAYS.pack_sql(hours="office_hours", cell="cell", days="office_days")
    work = HOURS_AT_CELL_WITH_DAYS.unpack_sql
    eligible_night, eligible_office = f"FILTER (WHERE night_days >= {min_days})", f"FILTER (WHERE office_days >= {min_days})"
    select = f"""
        WITH found AS (
            SELECT subscriber_id, sum(night_hours) AS night_total,
                   max({night_key}) {eligible_night} AS home_key,
                   arg_max(night_days, {night_key}) {eligible_night} AS home_days,
                   arg_max(office_hours, {night_key}) {eligible_night} AS home_office_hours,
                   sum(office_hours) AS office_hours,
                   max({office_key}, 2) {eligible_office} AS office_best,
                   max({HOURS_AT_CELL.pack_sql(hours="hours", cell="cell")}) AS frequent_key, sum(hours) AS location_hours,
                   -- Radius of gyration (km): sqrt(E|p|^2 - |E p|^2) over the towers seen, weighted by hours.
                   sqrt(greatest(sum(hours * (x * x + y * y)) / sum(hours) - power(sum(hours * x) / sum(hours), 2)
                                 - power(sum(hours * y) / sum(hours), 2), 0)) AS radius_of_gyration_km
            FROM per_cell GROUP BY subscriber_id
        ), home AS (
            SELECT *, {HOURS_AT_CELL.unpack_sql("home_key", "cell")}::INTEGER AS home_cell,
                   {HOURS_AT_CELL.unpack_sql("home_key", "hours")}::INTEGER AS home_hours,
                   {HOURS_AT_CELL.unpack_sql("frequent_key", "cell")}::INTEGER AS frequent_cell
            FROM found
        ), work AS (
            SELECT subscriber_id, home_cell, office_hours - coalesce(home_office_hours, 0) AS office_total,
                   {work("key", "cell")}::INTEGER AS work_cell, {work("key", "hours")}::INTEGER AS work_hours,
                   {work("key", "days")}::INTEGER AS work_days
            FROM (SELECT *, list_filter(office_best, lambda k: {work("k", "cell")} IS DISTINCT FROM home_cell)[1] AS key
                  FROM home)
        ), night_scores AS (
            SELECT p.subscriber_id, p.cell, p.night_hours FROM per_cell p JOIN home h USING (subscriber_id)
            WHERE p.night_hours > 0 AND h.home_cell IS NOT NULL
        ), office_scores AS (
            SELECT p.subscriber_id, p.cell, p.office_hours FROM per_cell p JOIN work w USING (subscriber_id)
            WHERE p.office_hours > 0 AND w.work_cell IS NOT NULL AND p.cell IS DISTINCT FROM w.home_cell
        ), everyone AS (
            SELECT subscriber_id FROM {subscribers} WHERE {ids}
        )
        SELECT e.subscriber_id,
               h.home_cell IS NOT NULL AS home_known, hc.cell_key AS home_cell, h.home_days,
               h.home_hours / NULLIF(h.night_total, 0) AS home_confidence,
               hh.h3 AS home_h3,
               w.work_cell IS NOT NULL AS work_known, wc.cell_key AS work_cell, w.work_days,
               w.work_hours / NULLIF(w.office_total, 0) AS work_confidence,
               wh.h3 AS work_h3,
               sqrt(power(hc.x - wc.x, 2) + power(hc.y - wc.y, 2)) AS home_work_km,
               fc.cell_key AS frequent_cell, h.radius_of_gyration_km, coalesce(h.location_hours, 0) AS location_hours
        FROM everyone e
        LEFT JOIN home h USING (subscriber_id) LEFT JOIN work w USING (subscriber_id)
        LEFT JOIN {_hex_choice('night_scores', 'night_hours')} hh USING (subscriber_id)
        LEFT JOIN {_hex_choice('office_scores', 'office_hours')} wh USING (subscriber_id)
        LEFT JOIN cell_ids hc ON hc.cell = h.home_cell
        LEFT JOIN cell_ids wc ON wc.cell = w.work_cell
        LEFT JOIN cell_ids fc ON fc.cell = h.frequent_cell
    """
    write_atomically(con, select, target)
    for table in ("per_cell", "coverage", "cell_ids"):
        con.execute(f"DROP TABLE {table}")
    rows, homes, works = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE home_known), count(*) FILTER (WHERE work_known) FROM read_parquet('{target}')"
    ).fetchone()
    return {"subscribers": rows, "homes_known": homes, "works_known": works}


register_stage(Stage("location", _("Location"), 20, compute_location, prepare=prepare_location))
register_feature_source(FeatureSource("location", location_features))
