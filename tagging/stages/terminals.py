"""The terminal snapshot library (用户终端拍照库): every subscriber's handset, its history and change cycle.

The terminal stage reads the subscriber's IMEI observations (and imei_change events) over the retained
history, set-wise in DuckDB: each distinct IMEI is one handset with the days it was first and last seen;
handsets in order of first use make the subscriber's chain, and each handset after the first is a
change. The TAC (first 8 digits) names the model in the catalogue. Knock-offs (山寨机) are flagged with
the first reason that holds: a TAC the catalogue lacks, an IMEI failing its Luhn check digit, a handset
reporting another brand than its TAC's, or a model its TAC does not have when that TAC is reported with
implausibly many models (a cloned TAC, found once per run over every subscriber).

Per partition it writes the subscriber's terminal features (a feature source joined into the tag
stage) and, beside them, every handset of the chain (what changes, switching flows and histories read).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from ..expressions import Type
from ..lake.sql import empty_relation
from ..lake.store import connect, read_sql
from . import PartitionWork, Stage, register_stage, stage_sql, write_atomically
from .features import Feature, FeatureSource, features_from, register_feature_source

DEVICES = "terminal_devices"  # per-partition handset chains, beside the stage's feature files
KNOCKOFF_REASONS = {
    "unknown_tac": ("TAC不在终端库", "TAC not in the catalogue"),
    "bad_check_digit": ("IMEI校验位错误", "IMEI fails the Luhn check digit"),
    "brand_mismatch": ("上报品牌与TAC不符", "Reported brand differs from the TAC's"),
    "cloned_tac": ("TAC被冒用(一个TAC多种机型)", "Cloned TAC: one TAC reported with many models"),
}

N, B, T = Type.NUMBER, Type.BOOLEAN, Type.TEXT
_FEATURES = [
    ("handset_brand", T, "", "终端品牌", "Brand of the handset in use, from its TAC ('Huawei', 'Apple', ...); NULL when unknown"),
    ("handset_model", T, "", "终端型号", "Model of the handset in use, from its TAC"),
    ("handset_tier", T, "", "终端档次", "Price tier of the model: 'low', 'mid', 'high' or 'flagship'"),
    ("handset_network", T, "", "终端网络制式", "Best network the model supports: '2G', '3G', '4G' or '5G'"),
    ("handset_os", T, "", "终端操作系统", "Operating system: 'HarmonyOS', 'iOS', 'Android', 'Feature'"),
    ("handset_price", N, "yuan", "终端价格", "Launch price of the model"),
    ("handset_model_age", N, "years", "机型上市年数", "Years since the model was released (as-of year minus release year)"),
    ("handset_days", N, "days", "当前终端使用天数", "Days since the handset in use was first seen"),
    ("has_5g_handset", B, "", "5G终端", "The handset in use supports 5G"),
    ("devices_12m", N, "handsets", "近12个月使用终端数", "Distinct handsets seen in the last 12 months"),
    ("handset_changes_12m", N, "changes", "近12个月换机次数", "Handset changes in the last 12 months"),
    ("handset_changes_total", N, "changes", "历史换机次数", "Handset changes over the retained history"),
    ("change_cycle_days", N, "days", "平均换机周期", "Average days the earlier handsets were kept (the first one from its first sighting): NULL without a change"),
    ("handset_overdue", B, "", "超出自身换机周期", "The handset in use is older than the subscriber's own change cycle"),
    ("previous_brand", T, "", "上一部终端品牌", "Brand of the handset used before the current one"),
    ("brand_streak", N, "handsets", "连续同品牌终端数", "Consecutive handsets of the current brand, counting the current one"),
    ("is_knockoff", B, "", "山寨机", "The handset in use is a knock-off (see knockoff_reason)"),
    ("knockoff_reason", T, "", "山寨机原因", "unknown_tac, bad_check_digit, brand_mismatch or cloned_tac; NULL when genuine"),
]


def terminal_features() -> list[Feature]:
    return features_from(_FEATURES, "imei_observations")


def history_start(as_of: date) -> date:
    return as_of - timedelta(days=settings.TERMINAL_HISTORY_DAYS - 1)


def luhn_ok_sql(imei: str) -> str:
    """True when a 15-digit IMEI's last digit is its Luhn check digit (digits doubled from the second).
    Integer arithmetic on the number: a fraction of the cost of fifteen substrings per handset."""
    number = f"CAST({imei} AS BIGINT)"
    terms = []
    for position in range(1, 15):
        digit = f"({number} // {10 ** (15 - position)} % 10)"
        terms.append(digit if position % 2 else f"(({digit} * 2) // 10 + ({digit} * 2) % 10)")
    return f"((10 - ({' + '.join(terms)}) % 10) % 10 = {number} % 10)"


def _differs(reported: str, catalogued: str) -> str:
    """A reported name is another name than the catalogue's: not equal even ignoring case and spaces
    ('HUAWEI' and 'Huawei', 'One Plus' and 'OnePlus' are the same). Plain equality decides most rows."""
    return (f"({reported} <> {catalogued} AND "
            f"lower(replace({reported}, ' ', '')) <> lower(replace({catalogued}, ' ', '')))")


def _observations_sql(work_files: dict[str, list[str]], where: str, as_of: date) -> str:
    """Every (subscriber, day, IMEI) seen, with what the handset reported, over the retained history."""
    start = history_start(as_of)
    parts = []
    if work_files.get("imei_observations"):
        source = read_sql("imei_observations", work_files["imei_observations"])
        parts.append(f"SELECT subscriber_id, date, imei, brand AS reported_brand, model AS reported_model, true AS observed FROM {source} "
                     f"WHERE {where} AND date BETWEEN DATE '{start}' AND DATE '{as_of}'")
    if work_files.get("events"):
        source = read_sql("events", work_files["events"])
        # The day a new handset first attached, even when no observation of that day survived.
        parts.append(f"SELECT subscriber_id, CAST(time AS DATE) AS date, imei, NULL AS reported_brand, NULL AS reported_model, "
                     f"false AS observed FROM {source} "
                     f"WHERE {where} AND kind = 'imei_change' AND imei IS NOT NULL "
                     f"AND CAST(time AS DATE) BETWEEN DATE '{start}' AND DATE '{as_of}'")
    if not parts:
        return empty_relation(subscriber_id="BIGINT", date="DATE", imei="VARCHAR", reported_brand="VARCHAR",
                              reported_model="VARCHAR", observed="BOOLEAN")
    return "(" + " UNION ALL ".join(parts) + ")"


def _catalogue_sql(files: dict[str, list[str]]) -> str:
    if files.get("tac_catalogue"):
        return read_sql("tac_catalogue", files["tac_catalogue"])
    return empty_relation(tac="VARCHAR", brand="VARCHAR", model="VARCHAR", release_year="INTEGER", tier="VARCHAR",
                          network="VARCHAR", os="VARCHAR", price_yuan="DOUBLE")


# --- prepare: cloned TACs, found once over every subscriber -------------------------------------------------

def prepare_terminals(run) -> dict:
    """TACs reported with at least TERMINAL_CLONE_MODELS distinct models: their clones report models
    the catalogue does not give the TAC. Pinned for every partition of the run."""
    from ..services.snapshots import pinned_paths

    files = pinned_paths(run.lake_batches)
    con = connect()
    try:
        # Distinct (TAC, reported model) pairs first: names are then normalised a few hundred times, not
        # once per observation.
        rows = con.execute(f"""
            SELECT tac FROM (
                SELECT substr(o.imei, 1, 8) AS tac, o.reported_model
                FROM {_observations_sql(files, 'true', run.as_of_date)} o
                WHERE o.reported_model IS NOT NULL GROUP BY ALL)
            GROUP BY tac HAVING count(DISTINCT lower(replace(reported_model, ' ', ''))) >= {settings.TERMINAL_CLONE_MODELS}
            ORDER BY tac
        """).fetchall()
    finally:
        con.close()
    return {"terminals": {"cloned_tacs": [tac for (tac,) in rows]}}


# --- compute one partition ---------------------------------------------------------------------------------

def devices_sql(work: PartitionWork) -> str:
    """Every handset of every subscriber of the partition, in order of first use, with its knock-off reason.

    Kept narrow: each string column costs more to carry through the chain window and to write than the
    grouping of the raw observations does; the catalogue's other columns are joined for the handset in use.
    """
    ids = work.ids_sql
    cloned = work.definitions.get("terminals", {}).get("cloned_tacs", [])
    cloned_sql = ", ".join(f"'{t}'" for t in cloned if t.isdigit()) or "NULL"
    return f"""
        WITH seen AS (
            -- Observations are unique per (subscriber, day, IMEI): days seen is a plain count of them.
            SELECT subscriber_id, imei, min(date) AS first_seen, max(date) AS last_seen, count(*) FILTER (WHERE observed) AS days_seen,
                   -- A handset reports the same name every time; max() picks it at a third of mode()'s cost.
                   max(reported_brand) AS reported_brand, max(reported_model) AS reported_model
            FROM {_observations_sql(work.lake_files, ids, work.as_of)} GROUP BY subscriber_id, imei
        ), described AS (
            SELECT s.subscriber_id, s.imei, s.first_seen, s.last_seen, s.days_seen, c.brand, c.model,
                   CASE WHEN c.tac IS NULL THEN 'unknown_tac'
                        WHEN NOT {luhn_ok_sql('s.imei')} THEN 'bad_check_digit'
                        WHEN s.reported_brand IS NOT NULL AND {_differs('s.reported_brand', 'c.brand')} THEN 'brand_mismatch'
                        WHEN c.tac IN ({cloned_sql}) AND s.reported_model IS NOT NULL
                             AND {_differs('s.reported_model', 'c.model')} THEN 'cloned_tac'
                   END AS knockoff_reason, s.reported_brand, s.reported_model
            FROM seen s LEFT JOIN {_catalogue_sql(work.lake_files)} c ON c.tac = substr(s.imei, 1, 8)
        )
        SELECT subscriber_id, row_number() OVER chain AS position, imei, first_seen, last_seen, days_seen, brand, model,
               lag(brand) OVER chain AS previous_brand, knockoff_reason,
               -- What a knock-off claimed to be; a genuine handset's report is its catalogue name.
               CASE WHEN knockoff_reason IS NOT NULL THEN reported_brand END AS reported_brand,
               CASE WHEN knockoff_reason IS NOT NULL THEN reported_model END AS reported_model
        FROM described
        WINDOW chain AS (PARTITION BY subscriber_id ORDER BY first_seen, last_seen, imei)
    """


def compute_terminals(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    """The handset chain of every subscriber of the partition, then one feature row per subscriber."""
    # Held in memory once: written as the partition's chain file and summarised per subscriber from there.
    con.execute(f"CREATE OR REPLACE TEMP TABLE chain AS {devices_sql(work)}")
    write_atomically(con, "SELECT * FROM chain", work.output_path(DEVICES, work.index))
    subscribers = read_sql("subscribers", work.lake_files["subscribers"])
    year_ago = work.as_of - timedelta(days=364)
    select = f"""
        WITH d AS (
            SELECT *, position - max(CASE WHEN previous_brand IS NULL OR previous_brand <> brand OR brand IS NULL
                                         THEN position END) OVER (PARTITION BY subscriber_id ORDER BY position) + 1 AS streak
            FROM chain
        ), everyone AS (
            SELECT subscriber_id FROM {subscribers} WHERE {work.ids_sql}
        ), per_subscriber AS (
            SELECT d.subscriber_id,
                   -- The handset in use: the one seen last (a subscriber may go back to an older one).
                   arg_max(d.position, (d.last_seen, d.first_seen)) AS current_position,
                   count(*) FILTER (WHERE d.last_seen >= DATE '{year_ago}') AS devices_12m,
                   count(*) FILTER (WHERE d.position > 1 AND d.first_seen >= DATE '{year_ago}') AS handset_changes_12m,
                   count(*) FILTER (WHERE d.position > 1) AS handset_changes_total,
                   -- How long the earlier handsets were kept: from the first sighting of the first to the
                   -- first use of the latest, per change. The handset in use is left out, so that its own
                   -- age can be held against it (overdue); the first one's start may lie before the history.
                   (max(d.first_seen) - min(d.first_seen)) / NULLIF(count(*) FILTER (WHERE d.position > 1), 0) AS change_cycle_days
            FROM d GROUP BY d.subscriber_id
        )
        SELECT e.subscriber_id,
               h.brand AS handset_brand, h.model AS handset_model, c.tier AS handset_tier, c.network AS handset_network,
               c.os AS handset_os, c.price_yuan::DOUBLE AS handset_price, {work.as_of.year} - c.release_year AS handset_model_age,
               DATE '{work.as_of}' - h.first_seen AS handset_days,
               coalesce(c.network = '5G', false) AS has_5g_handset,
               coalesce(p.devices_12m, 0) AS devices_12m, coalesce(p.handset_changes_12m, 0) AS handset_changes_12m,
               coalesce(p.handset_changes_total, 0) AS handset_changes_total, p.change_cycle_days,
               coalesce(DATE '{work.as_of}' - h.first_seen > p.change_cycle_days, false) AS handset_overdue,
               h.previous_brand, h.streak AS brand_streak,
               h.knockoff_reason IS NOT NULL AS is_knockoff, h.knockoff_reason,
               h.imei AS handset_imei, h.first_seen AS handset_since, h.reported_brand, h.reported_model
        -- Every subscriber of the partition, with NULLs when no handset was ever seen.
        FROM everyone e LEFT JOIN per_subscriber p USING (subscriber_id)
        LEFT JOIN d h ON h.subscriber_id = e.subscriber_id AND h.position = p.current_position
        LEFT JOIN {_catalogue_sql(work.lake_files)} c ON c.tac = substr(h.imei, 1, 8)
    """
    write_atomically(con, select, target)
    con.execute("DROP TABLE chain")
    subscribers, seen, knockoffs, changes = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE handset_imei IS NOT NULL), count(*) FILTER (WHERE is_knockoff), "
        f"sum(handset_changes_12m) FROM read_parquet('{target}')"
    ).fetchone()
    return {"subscribers": subscribers, "subscribers_with_handset": seen, "knockoffs": knockoffs,
            "handset_changes_12m": int(changes or 0)}


# --- publish: per-district aggregates -----------------------------------------------------------------------

PLACED_COLUMNS = ["handset_imei", "handset_brand", "handset_model", "handset_tier", "handset_network", "handset_os",
                  "is_knockoff", "has_5g_handset", "handset_changes_12m", "change_cycle_days"]


def publish_terminals(run, snapshot) -> dict:
    """Store the terminal mix, brand switching and change-cycle bins per district for pages and the API."""
    from ..models import HandsetSwitch, Region, TerminalShare, TerminalSummary
    from ..models.terminals import CYCLE_BINS

    terminals, devices, features = (stage_sql(run.id, stage) for stage in ("terminals", DEVICES, "features"))
    regions = dict(Region.objects.districts().values_list("code", "id"))
    year_ago = run.as_of_date - timedelta(days=364)
    bins = " ".join(f"WHEN change_cycle_days >= {low} THEN {i}" for i, low in reversed(list(enumerate(CYCLE_BINS))))
    con = connect()
    try:
        # Each subscriber's terminal row with their district, read and joined once for all four summaries
        # (only the columns they use: this runs inside the publishing transaction).
        con.execute(f"CREATE TEMP TABLE placed AS SELECT f.region_code, t.subscriber_id, {', '.join(PLACED_COLUMNS)} "
                    f"FROM {terminals} t JOIN {features} f USING (subscriber_id)")
        shares = con.execute("""
            SELECT region_code, coalesce(handset_brand, ''), coalesce(handset_model, ''), coalesce(handset_tier, ''),
                   coalesce(handset_network, ''), coalesce(handset_os, ''), count(*), count(*) FILTER (WHERE is_knockoff)
            FROM placed WHERE handset_imei IS NOT NULL GROUP BY ALL
        """).fetchall()
        switches = con.execute(f"""
            SELECT p.region_code, coalesce(d.previous_brand, ''), coalesce(d.brand, ''), count(*)
            FROM {devices} d JOIN placed p USING (subscriber_id)
            WHERE d.position > 1 AND d.first_seen >= DATE '{year_ago}' GROUP BY ALL
        """).fetchall()
        cycle = con.execute(f"""
            SELECT region_code, CASE {bins} END AS bin, count(*)
            FROM placed WHERE change_cycle_days IS NOT NULL GROUP BY ALL
        """).fetchall()
        totals = con.execute("""
            SELECT region_code, count(*), count(handset_imei), count(*) FILTER (WHERE is_knockoff),
                   count(*) FILTER (WHERE has_5g_handset), coalesce(sum(handset_changes_12m), 0),
                   count(*) FILTER (WHERE handset_imei IS NOT NULL AND change_cycle_days IS NULL)
            FROM placed GROUP BY 1
        """).fetchall()
    finally:
        con.close()
    TerminalShare.objects.bulk_create([
        TerminalShare(snapshot=snapshot, region_id=regions[code], brand=brand, model=model, tier=tier, network=network,
                      os=os_name, subscribers=n, knockoffs=knockoffs)
        for code, brand, model, tier, network, os_name, n, knockoffs in shares if code in regions
    ])
    HandsetSwitch.objects.bulk_create([
        HandsetSwitch(snapshot=snapshot, region_id=regions[code], from_brand=before, to_brand=after, changes=n)
        for code, before, after, n in switches if code in regions
    ])
    per_bin: dict[str, list[int]] = {}
    for code, index, n in cycle:
        per_bin.setdefault(code, [0] * len(CYCLE_BINS))[index] = n
    TerminalSummary.objects.bulk_create([
        TerminalSummary(snapshot=snapshot, region_id=regions[code], subscribers=n, with_handset=seen, knockoffs=knockoffs,
                        five_g_handsets=five_g, changes_12m=changes, cycle_unknown=unknown,
                        cycle_bins=per_bin.get(code, [0] * len(CYCLE_BINS)))
        for code, n, seen, knockoffs, five_g, changes, unknown in totals if code in regions
    ])
    return {"models": len({(r[1], r[2]) for r in shares}), "switches": sum(r[3] for r in switches)}


register_stage(Stage("terminals", _("Terminals"), 10, compute_terminals, prepare=prepare_terminals,
                     publish=publish_terminals))
register_feature_source(FeatureSource("terminals", terminal_features))
