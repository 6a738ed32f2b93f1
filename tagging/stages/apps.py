"""The internet trajectory model (上网轨迹模型): what each subscriber does online, from daily app usage (DPI/xDR).

Per partition, set-wise in DuckDB: per category of the DPI library, the days of real use (at least a minute in the
category that day: pushes and updates of an installed app that nobody opens move bytes, not minutes), the bytes
and their shares, the top app, categories new this period, the operators' apps. Interest tags are rules over these.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from django.utils.translation import gettext_lazy as _

from ..expressions import Type
from ..lake.schemas import APP_CATEGORIES
from ..lake.sql import empty_relation
from ..lake.store import files_sql, read_sql
from . import PartitionWork, Stage, register_stage, write_atomically
from .features import Feature, FeatureSource, register_feature_source

INTEREST_CATEGORIES = [c for c in APP_CATEGORIES if not c.startswith("operator_") and c != "other"]
CATEGORY_LABELS = {
    "video": ("视频", "video"), "short_video": ("短视频", "short video"), "game": ("手游", "mobile games"),
    "shopping": ("网购", "online shopping"), "social": ("社交", "social apps"), "news": ("资讯", "news"),
    "finance": ("理财", "finance"), "travel": ("出行", "travel"), "navigation": ("导航", "navigation"),
    "music": ("音乐", "music"), "reading": ("阅读", "reading"), "education": ("在线教育", "education"),
}
USE_SECONDS = 60  # a day counts as use of a category with at least a minute in it

N, T = Type.NUMBER, Type.TEXT


def app_features() -> list[Feature]:
    rows = [
        Feature("app_days", N, "days", "上网活跃天数", "Days in the window with any app traffic", "app_usage_daily"),
        Feature("app_mb_30d", N, "MB / 30 days", "月均APP流量", "App traffic (up and down) per 30 days", "app_usage_daily"),
        Feature("unclassified_share", N, "0-1", "未识别流量占比",
                "Share of the bytes DPI could not classify (encrypted, VPN); NULL without traffic", "app_usage_daily"),
        Feature("top_app", T, "", "最常用APP", "App id with the most seconds of use in the window; NULL without use", "app_usage_daily"),
        Feature("top_category", T, "", "最常用APP类别", "Category with the most seconds of use in the window", "app_usage_daily"),
        Feature("categories_used", N, "categories", "使用APP类别数",
                f"Categories used on at least 3 days (at least {USE_SECONDS} s a day)", "app_usage_daily"),
        Feature("new_categories", N, "categories", "本期新增APP类别",
                "Categories used on 2 days or more in the current trend period and not at all in the previous one", "app_usage_daily"),
        Feature("competitor_app_days", N, "days", "使用异网运营商APP天数",
                "Days with a competing operator's own app (China Unicom, China Telecom) in use: a sign of a second line", "app_usage_daily"),
        Feature("own_operator_app_days", N, "days", "使用本网运营商APP天数", "Days with the operator's own app in use", "app_usage_daily"),
    ]
    for category in INTEREST_CATEGORIES:
        label, english = CATEGORY_LABELS[category]
        rows += [
            Feature(f"{category}_top_app", T, "", f"最常用{label}类APP",
                    f"App id of the {english} app with the most seconds of use; NULL without use", "app_usage_daily"),
            Feature(f"{category}_days", N, "days", f"{label}类APP使用天数",
                    f"Days with at least {USE_SECONDS} s of {english} apps", "app_usage_daily"),
            Feature(f"{category}_day_share", N, "0-1", f"{label}类APP使用天数占比",
                    f"Days of {english} use over the days with any app traffic; NULL without traffic", "app_usage_daily"),
            Feature(f"{category}_minutes_30d", N, "minutes / 30 days", f"{label}类APP月均时长",
                    f"Minutes of {english} apps per 30 days", "app_usage_daily"),
            Feature(f"{category}_byte_share", N, "0-1", f"{label}类APP流量占比",
                    f"Share of the subscriber's classified bytes in {english} apps; NULL without traffic", "app_usage_daily"),
        ]
    return rows


WORD = 64  # days per UBIGINT word of a day mask


def _days_sql(mask, days: range, words: int) -> str:
    """How many of `days` (numbered from the first day read) are set in a day mask; `mask(j)` gives word j's SQL."""
    constants = [0] * words
    for day in days:
        constants[day // WORD] |= 1 << (day % WORD)
    return " + ".join(f"bit_count(({mask(j)}) & {c}::UBIGINT)::INTEGER" for j, c in enumerate(constants)) or "0"


def compute_apps(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    """One pass over the partition's rows groups them by (subscriber, app), keeping the days each app was in use as
    bits of a few words; everything after works on those few rows per subscriber."""
    ids = work.ids_sql
    files = work.lake_files
    previous_from, current_from = work.trend_starts
    earliest = min(work.window_start, previous_from)
    span = (work.as_of - earliest).days + 1
    words = (span + WORD - 1) // WORD
    window = range((work.window_start - earliest).days, span)
    current = range((current_from - earliest).days, span)
    previous = range((previous_from - earliest).days, (current_from - earliest).days)
    scale = 30.0 / work.definitions.get("usage_days", work.window_days)
    usage = (
        f"(SELECT subscriber_id, date, app_id, seconds, bytes_up + bytes_down AS bytes FROM read_parquet({files_sql(files['app_usage_daily'])}) "
        f"WHERE {ids} AND date BETWEEN DATE '{earliest}' AND DATE '{work.as_of}')"
        if files.get("app_usage_daily") else
        empty_relation(subscriber_id="BIGINT", date="DATE", app_id="VARCHAR", seconds="BIGINT", bytes="BIGINT")
    )
    apps = (f"(SELECT app_id, category FROM {read_sql('app_catalogue', files['app_catalogue'])})" if files.get("app_catalogue")
            else empty_relation(app_id="VARCHAR", category="VARCHAR"))
    in_window = f"u.date >= DATE '{work.window_start}'"
    # A day of use: a minute or more in one of the category's apps (the operators' own apps: any time in them). A
    # day seen: any traffic at all, pushes and updates included.
    used = f"CASE WHEN c.category LIKE 'operator_%' THEN u.seconds > 0 ELSE u.seconds >= {USE_SECONDS} END"
    day = f"(u.date - DATE '{earliest}')"
    masks = ", ".join(
        f"bit_or(CASE WHEN {day} // {WORD} = {j} AND {condition} THEN 1::UBIGINT << ({day} % {WORD})::UBIGINT "
        f"ELSE 0::UBIGINT END) AS {name}{j}"
        for j in range(words) for name, condition in (("used", used), ("seen", "true")))
    merged = ", ".join(f"bit_or({name}{j}) AS {name}{j}" for j in range(words) for name in ("used", "seen"))
    days_used = _days_sql(lambda j: f"used{j}", window, words)
    app_days = _days_sql(lambda j: f"bit_or(seen{j})", window, words)
    interests = f"category IN ({', '.join(repr(c) for c in INTEREST_CATEGORIES)})"

    def of(c: str, value: str) -> str:
        return f"max({value}) FILTER (WHERE category = '{c}')"

    per_category = ",\n                   ".join(
        f"coalesce({of(c, days_used)}, 0) AS {c}_days, coalesce({of(c, days_used)}, 0) / NULLIF({app_days}, 0) AS {c}_day_share, "
        f"coalesce({of(c, 'seconds')}, 0) / 60.0 * {scale} AS {c}_minutes_30d, "
        f"coalesce({of(c, 'bytes')}, 0) / NULLIF(sum(bytes) FILTER (WHERE category <> 'other'), 0) AS {c}_byte_share, "
        f"{of(c, 'top_app')} AS {c}_top_app"
        for c in INTEREST_CATEGORIES
    )
    # Counts are 0, not NULL, for a subscriber without traffic.
    counted = ["app_days", "app_mb_30d", "categories_used", "new_categories", "competitor_app_days", "own_operator_app_days",
               *(f"{c}_{what}" for c in INTEREST_CATEGORIES for what in ("days", "minutes_30d"))]
    select = f"""
        WITH per_app AS (
            SELECT u.subscriber_id, u.app_id, coalesce(c.category, 'other') AS category,
                   coalesce(sum(u.seconds) FILTER (WHERE {in_window}), 0) AS seconds,
                   coalesce(sum(u.bytes) FILTER (WHERE {in_window}), 0) AS bytes, {masks}
            FROM {usage} u LEFT JOIN {apps} c USING (app_id)
            GROUP BY u.subscriber_id, u.app_id, c.category
        ), per_category AS (
            SELECT subscriber_id, category, sum(seconds) AS seconds, sum(bytes) AS bytes,
                   arg_max(app_id, seconds) FILTER (WHERE seconds > 0) AS top_app, {merged}
            FROM per_app GROUP BY subscriber_id, category
        ), d AS (
            SELECT subscriber_id, {app_days} AS app_days,
                   sum(bytes) * {scale} / 1e6 AS app_mb_30d,
                   sum(bytes) FILTER (WHERE category = 'other') / NULLIF(sum(bytes), 0) AS unclassified_share,
                   arg_max(top_app, seconds) FILTER (WHERE seconds > 0) AS top_app,
                   arg_max(category, seconds) FILTER (WHERE seconds > 0 AND {interests}) AS top_category,
                   count(*) FILTER (WHERE {interests} AND {days_used} >= 3) AS categories_used,
                   count(*) FILTER (WHERE {interests} AND {_days_sql(lambda j: f"used{j}", current, words)} >= 2
                                    AND {_days_sql(lambda j: f"used{j}", previous, words)} = 0) AS new_categories,
                   coalesce({_days_sql(lambda j: f"bit_or(used{j}) FILTER (WHERE category IN ('operator_cu', 'operator_ct'))", window, words)}, 0)
                       AS competitor_app_days,
                   coalesce({of('operator_cmcc', days_used)}, 0) AS own_operator_app_days,
                   {per_category}
            FROM per_category GROUP BY subscriber_id
        )
        SELECT s.subscriber_id, d.* EXCLUDE (subscriber_id, {", ".join(counted)}),
               {", ".join(f"coalesce(d.{name}, 0) AS {name}" for name in counted)}
        FROM (SELECT subscriber_id FROM {read_sql('subscribers', files['subscribers'])} WHERE {ids}) s
        LEFT JOIN d USING (subscriber_id)
    """
    write_atomically(con, select, target)
    rows, with_traffic = con.execute(f"SELECT count(*), count(*) FILTER (WHERE app_days > 0) FROM read_parquet('{target}')").fetchone()
    return {"subscribers": rows, "with_app_traffic": with_traffic}


register_stage(Stage("apps", _("App usage"), 31, compute_apps))
register_feature_source(FeatureSource("apps", app_features))
