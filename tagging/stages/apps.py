"""The internet trajectory model (上网轨迹模型): what each subscriber does online, from daily app usage (DPI/xDR).

Per partition, set-wise in DuckDB: per category of the DPI library, the days of real use (at least a minute in the
category that day: pushes and updates of an installed app that nobody opens move bytes, not minutes), the bytes
and their shares, the top app, categories new this period, the operators' apps. Interest tags are rules over these.
"""

from __future__ import annotations

from datetime import date
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


def compute_apps(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    ids = work.ids_sql
    files = work.lake_files
    trend = work.definitions["trend"]
    previous_from, current_from = (date.fromisoformat(trend[k][0]) for k in ("previous", "current"))
    earliest = min(work.window_start, previous_from)
    days = work.definitions.get("usage_days", work.window_days)
    usage = (
        f"(SELECT subscriber_id, date, app_id, seconds, bytes_up + bytes_down AS bytes FROM read_parquet({files_sql(files['app_usage_daily'])}) "
        f"WHERE {ids} AND date BETWEEN DATE '{earliest}' AND DATE '{work.as_of}')"
        if files.get("app_usage_daily") else
        empty_relation(subscriber_id="BIGINT", date="DATE", app_id="VARCHAR", seconds="BIGINT", bytes="BIGINT")
    )
    apps = (f"(SELECT app_id, category FROM {read_sql('app_catalogue', files['app_catalogue'])})" if files.get("app_catalogue")
            else empty_relation(app_id="VARCHAR", category="VARCHAR"))
    window = f"date >= DATE '{work.window_start}'"
    per_category = ",\n".join(
        f"count(*) FILTER (WHERE category = '{c}' AND {window} AND seconds >= {USE_SECONDS}) AS {c}_days, "
        f"coalesce(sum(seconds) FILTER (WHERE category = '{c}' AND {window}), 0) / 60.0 * {30.0 / days} AS {c}_minutes_30d, "
        f"sum(bytes) FILTER (WHERE category = '{c}' AND {window}) AS {c}_bytes"
        for c in INTEREST_CATEGORIES
    )
    shares = ",\n".join(
        f"coalesce(d.{c}_days, 0) AS {c}_days, coalesce(d.{c}_days, 0) / NULLIF(a.app_days, 0) AS {c}_day_share, "
        f"coalesce(d.{c}_minutes_30d, 0) AS {c}_minutes_30d, "
        f"coalesce(d.{c}_bytes, 0) / NULLIF(a.classified_bytes, 0) AS {c}_byte_share"
        for c in INTEREST_CATEGORIES
    )
    interest_list = ", ".join(f"'{c}'" for c in INTEREST_CATEGORIES)
    top_per_category = ", ".join(f"arg_max(app_id, seconds) FILTER (WHERE category = '{c}') AS {c}_top_app" for c in INTEREST_CATEGORIES)
    select = f"""
        WITH u AS (SELECT u.*, coalesce(c.category, 'other') AS category FROM {usage} u LEFT JOIN {apps} c USING (app_id)),
        -- one row per subscriber, day and category: what "a day of use" is measured on
        daily AS (SELECT subscriber_id, date, category, sum(seconds) AS seconds, sum(bytes) AS bytes FROM u GROUP BY ALL),
        d AS (
            SELECT subscriber_id, {per_category},
                   count(*) FILTER (WHERE category IN ('operator_cu', 'operator_ct') AND {window} AND seconds > 0) AS competitor_app_days,
                   count(*) FILTER (WHERE category = 'operator_cmcc' AND {window} AND seconds > 0) AS own_operator_app_days
            FROM daily GROUP BY subscriber_id
        ),
        a AS (
            SELECT subscriber_id, count(DISTINCT date) FILTER (WHERE {window}) AS app_days,
                   sum(bytes) FILTER (WHERE {window}) AS all_bytes,
                   sum(bytes) FILTER (WHERE {window} AND category <> 'other') AS classified_bytes,
                   sum(bytes) FILTER (WHERE {window} AND category = 'other') AS other_bytes
            FROM u GROUP BY subscriber_id
        ),
        top AS (
            SELECT subscriber_id, arg_max(app_id, seconds) AS top_app, {top_per_category} FROM (
                SELECT subscriber_id, app_id, category, sum(seconds) AS seconds FROM u WHERE {window} AND seconds > 0 GROUP BY ALL
            ) GROUP BY subscriber_id
        ),
        categories AS (
            SELECT subscriber_id,
                   arg_max(category, seconds) FILTER (WHERE seconds > 0) AS top_category,
                   count(*) FILTER (WHERE days >= 3) AS categories_used,
                   count(*) FILTER (WHERE current_days >= 2 AND previous_days = 0) AS new_categories
            FROM (
                SELECT subscriber_id, category,
                       sum(seconds) FILTER (WHERE {window}) AS seconds,
                       count(*) FILTER (WHERE {window} AND seconds >= {USE_SECONDS}) AS days,
                       count(*) FILTER (WHERE date >= DATE '{current_from}' AND seconds >= {USE_SECONDS}) AS current_days,
                       count(*) FILTER (WHERE date >= DATE '{previous_from}' AND date < DATE '{current_from}' AND seconds >= {USE_SECONDS}) AS previous_days
                FROM daily WHERE category IN ({interest_list}) GROUP BY ALL
            ) GROUP BY subscriber_id
        )
        SELECT s.subscriber_id,
               coalesce(a.app_days, 0) AS app_days,
               coalesce(a.all_bytes, 0) / 1e6 * {30.0 / days} AS app_mb_30d,
               coalesce(a.other_bytes, 0) / NULLIF(a.all_bytes, 0) AS unclassified_share,
               top.top_app, categories.top_category, {', '.join(f'top.{c}_top_app' for c in INTEREST_CATEGORIES)},
               coalesce(categories.categories_used, 0) AS categories_used,
               coalesce(categories.new_categories, 0) AS new_categories,
               coalesce(d.competitor_app_days, 0) AS competitor_app_days,
               coalesce(d.own_operator_app_days, 0) AS own_operator_app_days,
               {shares}
        FROM (SELECT subscriber_id FROM {read_sql('subscribers', files['subscribers'])} WHERE {ids}) s
        LEFT JOIN d USING (subscriber_id) LEFT JOIN a USING (subscriber_id)
        LEFT JOIN top USING (subscriber_id) LEFT JOIN categories USING (subscriber_id)
    """
    write_atomically(con, select, target)
    rows, with_traffic = con.execute(f"SELECT count(*), count(*) FILTER (WHERE app_days > 0) FROM read_parquet('{target}')").fetchone()
    return {"subscribers": rows, "with_app_traffic": with_traffic}


register_stage(Stage("apps", _("App usage"), 31, compute_apps))
register_feature_source(FeatureSource("apps", app_features))
