"""The feature catalogue and the features stage: one row per subscriber of a partition, set-wise in DuckDB.

Tag rules are conditions over these columns. Other apps add feature sources (terminal, location) with
`register_feature_source()` in their AppConfig.ready(): each names the stage whose per-partition file holds
its columns, keyed by subscriber_id, and the tag stage joins them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
from django.utils.translation import gettext_lazy as _

from ..expressions import Symbol, Type
from ..lake.sql import column_names, empty_relation
from ..lake.store import files_sql, read_sql
from . import PartitionWork, Stage, register_stage, stage_files, write_atomically


@dataclass(frozen=True)
class Feature:
    """One column of the feature table, as admins and the API see it."""

    name: str
    type: Type
    unit: str
    label: str  # Chinese
    description: str  # English: what it measures and how
    source: str  # the raw dataset it comes from

    def as_dict(self) -> dict:
        return {"name": self.name, "type": self.type.value, "unit": self.unit, "label": self.label,
                "description": self.description, "source": self.source}


@dataclass(frozen=True)
class FeatureSource:
    """Features one stage writes per partition (a Parquet file keyed by subscriber_id)."""

    stage: str
    features: Callable[[], list[Feature]]


FEATURE_SOURCES: dict[str, FeatureSource] = {}


def register_feature_source(source: FeatureSource) -> None:
    FEATURE_SOURCES[source.stage] = source


def catalogue() -> list[Feature]:
    """Every feature a rule may use, from every registered source."""
    return [feature for source in FEATURE_SOURCES.values() for feature in source.features()]


def features_from(rows: list[tuple], source: str) -> list[Feature]:
    """Features from (name, type, unit, label, description) rows that share one raw dataset."""
    return [Feature(name, kind, unit, label, description, source) for name, kind, unit, label, description in rows]


# Features from these datasets say what a subscriber does online and whom they call: analysts only (view_behaviour).
BEHAVIOUR_SOURCES = {"app_usage_daily", "call_records"}

GRADED_UNIT = "decile"  # a feature in this unit is a graded score, with a bitmap per grade for audiences


def feature_symbols() -> dict[str, Symbol]:
    return {f.name: Symbol(f.name, f.type, "score" if f.unit == GRADED_UNIT else "feature") for f in catalogue()}


def feature_table_sql(files_by_stage: dict[str, list[str]]) -> str:
    """One row per subscriber: the base features joined with every other source's columns."""
    base = f"read_parquet({files_sql(files_by_stage['features'])})"
    joins = "".join(
        f" LEFT JOIN read_parquet({files_sql(files)}) AS {stage} USING (subscriber_id)"
        for stage, files in files_by_stage.items() if stage != "features" and files
    )
    return f"(SELECT * FROM {base}{joins})"


def run_feature_files(run_id: int, *, leaving_out: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Every feature source's files of a run (none for a stage that did not run), but those left out."""
    return {stage: stage_files(run_id, stage) for stage in FEATURE_SOURCES if stage not in leaving_out}


def partition_feature_files(work: PartitionWork, *, leaving_out: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """The files the feature sources wrote for this partition so far (a later stage's are not there yet)."""
    return {stage: [str(work.earlier_output(stage))] for stage in FEATURE_SOURCES
            if stage not in leaving_out and work.earlier_output(stage).exists()}


# --- the base features: usage, subscriber attributes, products held --------------------------------------

N, B, T = Type.NUMBER, Type.BOOLEAN, Type.TEXT
_USAGE = [
    ("active_days", N, "days", "通信活跃天数", "Days in the window with any call, SMS or data use"),
    ("active_day_share", N, "0-1", "活跃天数占比", "Active days divided by the days of the window the usage data cover"),
    ("days_since_last_use", N, "days", "最近一次使用距今天数", "Days from the last active day to the as-of date, looking back over both trend periods (one more than that when none)"),
    ("voice_calls_total", N, "calls", "通话次数(窗口)", "Calls made in the window"),
    ("voice_minutes_total", N, "minutes", "通话分钟(窗口)", "Call minutes in the window"),
    ("sms_total", N, "messages", "短信条数(窗口)", "SMS sent in the window"),
    ("mms_total", N, "messages", "彩信条数(窗口)", "MMS sent in the window"),
    ("data_mb_total", N, "MB", "流量(窗口)", "Mobile data used in the window"),
    ("charge_total", N, "yuan", "出账收入(窗口)", "Charges billed in the window"),
    ("voice_calls_30d", N, "calls / 30 days", "月均通话次数", "Calls per 30 days (the window's total over the days the usage data cover, times 30)"),
    ("voice_minutes_30d", N, "minutes / 30 days", "月均通话分钟", "Call minutes per 30 days"),
    ("sms_30d", N, "messages / 30 days", "月均短信条数", "SMS per 30 days"),
    ("mms_30d", N, "messages / 30 days", "月均彩信条数", "MMS per 30 days"),
    ("data_mb_30d", N, "MB / 30 days", "月均流量", "Mobile data per 30 days"),
    ("arpu_30d", N, "yuan / 30 days", "月均出账收入 ARPU", "Charges per 30 days: the subscriber's ARPU"),
    ("night_call_share", N, "0-1", "夜间通话占比", "Share of calls made at night (22:00-06:00); NULL without calls"),
    ("onnet_call_share", N, "0-1", "网内通话占比", "Share of calls to the operator's own subscribers"),
    ("offnet_call_share", N, "0-1", "网外通话占比", "Share of calls to other networks (fixed and other operators)"),
    ("competitor_call_share", N, "0-1", "网间(竞争对手)通话占比", "Share of calls to competing mobile operators"),
    ("roaming_days", N, "days", "漫游天数", "Days in the window with roaming use"),
    ("roaming_minutes_30d", N, "minutes / 30 days", "月均漫游分钟", "Roaming minutes per 30 days"),
    ("voice_trend", N, "ratio", "通话趋势", "Call minutes per day this period / per day the period before (1.2 = 20% growth); NULL without a base"),
    ("sms_trend", N, "ratio", "短信趋势", "SMS per day this period / per day the period before"),
    ("data_trend", N, "ratio", "流量趋势", "Data per day this period / per day the period before"),
    ("charge_trend", N, "ratio", "收入趋势", "Charges per day this period / per day the period before: growth above 1, decline below"),
    # A line about to go winds down in its last weeks (calls and data move to the new line): the last week against
    # the window, as operators' churn warnings compare 近7天 with 近30天.
    ("voice_last_week_ratio", N, "ratio", "近7天通话比", "Call minutes per day in the 7 days to the as-of date / per day "
                                                        "in the window (0.5 = half as much lately); NULL without calls"),
    ("data_last_week_ratio", N, "ratio", "近7天流量比", "Data per day in the 7 days to the as-of date / per day in the "
                                                      "window; NULL without data use"),
]
_SUBSCRIBER = [
    ("tenure_months", N, "months", "在网时长", "Whole months from joining to the as-of date"),
    ("age", N, "years", "年龄", "Age at the as-of date; NULL when the birth year is unknown"),
    ("gender", T, "M/F/U", "性别", "Gender: 'M', 'F' or 'U' (unknown)"),
    ("brand", T, "", "品牌", "Customer brand: '全球通', '动感地带' or '神州行'"),
    ("plan_fee", N, "yuan / month", "套餐月费", "Monthly fee of the main plan (from the plan name, e.g. '4G飞享 58元')"),
    ("region_code", T, "", "归属区县", "Administrative code of the subscriber's district"),
    ("status", T, "", "状态", "Account status on the as-of date: 'active', 'suspended', 'closed' or 'ported_out' "
                              "(携号转出); a status that took effect later reads as 'active', and a line that joined "
                              "later reads 'not_joined' (未入网)"),
    ("marketing_opt_out", B, "", "拒绝营销", "The subscriber asked not to receive marketing"),
    ("commitment_days_left", N, "days", "合约剩余天数", "Days from the as-of date to the end of the plan's commitment "
                                                   "(合约到期), negative once it has ended; NULL without a commitment"),
]
_LEAVING = [
    ("port_out_queries", N, "queries", "携转资格查询次数", "Times in the window the subscriber asked whether they may port "
                                                      "their number out (查询携转资格)"),
    ("days_since_port_out_query", N, "days", "最近携转查询距今天数", "Days from the last port-out query in the window to the "
                                                              "as-of date; NULL without one"),
]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", text.lower())


def product_feature(code: str) -> str:
    """The boolean feature saying a subscriber holds the product."""
    return f"has_{_slug(code)}"


def _product_features() -> list[Feature]:
    from ..models import Product

    products = list(Product.objects.order_by("code").values_list("code", "name", "name_en", "category"))
    features = [
        Feature("products_held", N, "products", "订购产品数", "Products held on the as-of date", "subscriptions"),
        Feature("package_fee_total", N, "yuan / month", "订购产品月费合计", "Monthly fees of all products held", "subscriptions"),
    ]
    for code, name, name_en, _category in products:
        features.append(Feature(product_feature(code), B, "", f"已订购{name}", f"Holds {name_en or code} on the as-of date", "subscriptions"))
    for category in sorted({p[3] for p in products}):
        features.append(Feature(f"{_slug(category)}_package_fee", N, "yuan / month", f"{category}类产品月费",
                                f"Monthly fees of the {category} products held (0 when none)", "subscriptions"))
    return features


def base_features() -> list[Feature]:
    return (features_from(_USAGE, "usage_daily") + features_from(_SUBSCRIBER, "subscribers") + features_from(_LEAVING, "events")
            + _product_features())


def trend_periods(*, as_of: date, window_days: int, usage_from: date | None, usage_to: date | None = None) -> dict:
    """The two periods a trend compares: this window against the previous one when the lake holds it,
    otherwise the window's second half against its first (a city with one window of history). Each
    period ends where the usage data do; trends compare the periods' daily rates, so that periods of
    unequal length (an odd number of days halved) compare fairly."""
    start = as_of - timedelta(days=window_days - 1)
    previous_start = start - timedelta(days=window_days)
    end = min(as_of, usage_to) if usage_to is not None and usage_to >= start else as_of
    if usage_from is not None and usage_from <= previous_start:
        return {"basis": "previous window", "previous": [str(previous_start), str(start - timedelta(days=1))],
                "current": [str(start), str(end)]}
    covered = max(start, usage_from) if usage_from is not None else start
    half = covered + timedelta(days=((end - covered).days + 1) // 2)
    return {"basis": "window halves", "previous": [str(covered), str(half - timedelta(days=1))],
            "current": [str(half), str(end)]}


def period_days(period: list[str]) -> int:
    first, last = (date.fromisoformat(day) for day in period)
    return (last - first).days + 1


def usage_days(*, as_of: date, window_days: int, usage_from: date | None, usage_to: date | None) -> int:
    """The days of the window that the usage data cover: rates per 30 days and the share of active days
    divide by these, not by the window, so that a lake whose history starts (or ends) inside the window
    does not make everyone look quieter. The whole window when nothing is known."""
    start = as_of - timedelta(days=window_days - 1)
    if usage_from is None or usage_to is None:
        return window_days
    covered = (min(as_of, usage_to) - max(start, usage_from)).days + 1
    return covered if 1 <= covered <= window_days else window_days


def held_masks_sql(subscriptions: str, codes: list[str], as_of: date, where: str = "true") -> str:
    """SELECT of (subscriber_id, mask_0, mask_1...): the products each subscriber of `subscriptions` (a lake relation)
    holds on `as_of`, bit i of the masks standing for codes[i]. UBIGINT words (a shift by an integer would make them
    HUGEINT, which Parquet stores as DOUBLE)."""
    words = max((len(codes) + 63) // 64, 1)
    cases = " ".join(f"WHEN '{code}' THEN {i}" for i, code in enumerate(codes))
    masks = ", ".join(
        f"bit_or(CASE WHEN idx // 64 = {w} THEN 1::UBIGINT << (idx % 64)::UBIGINT ELSE 0::UBIGINT END) AS mask_{w}"
        for w in range(words)
    )
    return (f"SELECT subscriber_id, {masks} FROM (SELECT subscriber_id, CASE product_code {cases} END AS idx "
            f"FROM {subscriptions} WHERE {where} AND start_date <= DATE '{as_of}' "
            f"AND (end_date IS NULL OR end_date >= DATE '{as_of}')) WHERE idx IS NOT NULL GROUP BY subscriber_id")


def _products_held(con: duckdb.DuckDBPyConnection, work: PartitionWork, ids: str) -> tuple[str, str]:
    """Columns and join for the products held on the as-of date: one bit per product, OR-ed per subscriber.

    One bitwise aggregate instead of a boolean and a sum per product and category: the subscriptions
    pass then costs about what reading them does, however many products there are.
    """
    files = work.lake_files
    if not files.get("products") or not files.get("subscriptions"):
        return "", ""
    products = read_sql("products", files["products"])
    rows = con.execute(f"SELECT code, category, monthly_fee_yuan FROM {products} ORDER BY code").fetchall()
    words = (len(rows) + 63) // 64
    index = {code: i for i, (code, _, _) in enumerate(rows)}
    masks = held_masks_sql(read_sql("subscriptions", files["subscriptions"]), list(index), work.as_of, ids)
    product_join = f" LEFT JOIN ({masks}) p USING (subscriber_id)"

    def held(i: int) -> str:
        return f"coalesce((p.mask_{i // 64} >> {i % 64}) & 1::UBIGINT = 1::UBIGINT, false)"

    fee_of = {code: f"{float(fee or 0)!r}::DOUBLE" for code, _, fee in rows}  # a DOUBLE feature, not a DECIMAL
    columns = [
        " + ".join(f"coalesce(bit_count(p.mask_{w}), 0)" for w in range(words)) + " AS products_held",
        " + ".join(f"{held(i)}::INTEGER * {fee_of[code]}" for code, i in index.items()) + " AS package_fee_total",
        *(f"{held(i)} AS {product_feature(code)}" for code, i in index.items()),
        *(
            " + ".join(f"{held(index[code])}::INTEGER * {fee_of[code]}" for code, cat, _ in rows if cat == category)
            + f" AS {_slug(category)}_package_fee"
            for category in sorted({r[1] for r in rows})
        ),
    ]
    return "".join(f",\n               {c}" for c in columns), product_join


def compute_features(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    """Per-subscriber features over the window for every subscriber of the partition (zeros when silent)."""
    ids = work.ids_sql
    subscribers = read_sql("subscribers", work.lake_files["subscribers"])
    trend = work.definitions["trend"]
    (prev_from, _), (cur_from, _) = trend["previous"], trend["current"]
    days = work.definitions.get("usage_days", work.window_days)
    scale = 30.0 / days
    usage_files = work.lake_files.get("usage_daily", [])
    earliest = min(work.window_start, date.fromisoformat(prev_from))
    usage = (
        f"(SELECT * FROM read_parquet({files_sql(usage_files)}) WHERE {ids} "
        f"AND date BETWEEN DATE '{earliest}' AND DATE '{work.as_of}')"
        if usage_files else
        empty_relation(subscriber_id="BIGINT", date="DATE", voice_calls="BIGINT", voice_minutes="DOUBLE",
                       onnet_calls="BIGINT", offnet_calls="BIGINT", competitor_calls="BIGINT", sms="BIGINT", mms="BIGINT",
                       data_mb="DOUBLE", roaming_minutes="DOUBLE", night_calls="BIGINT", charge_yuan="DOUBLE")
    )
    # The rows read run from the start of the earlier trend period to the as-of date. When that is just
    # the window (a city with one window of history), window sums are plain sums; and the earlier
    # period's sums are always the total less the current period's: a conditional sum costs far more
    # over every raw row than a plain one (and if() less than multiplying by a 0/1 flag).
    whole_read_is_window = date.fromisoformat(prev_from) >= work.window_start

    def in_window(column: str) -> str:
        return f"sum({column})" if whole_read_is_window else f"sum(if(date >= DATE '{work.window_start}', {column}, 0))"

    def current(column: str) -> str:
        return f"sum(if(date >= DATE '{cur_from}', {column}, 0))" if whole_read_is_window else in_window(column)

    # A trend is this period's daily rate over the earlier period's.
    per_day = period_days(trend["previous"]) / period_days(trend["current"])

    def trend_of(column: str) -> str:
        return f"coalesce({column}_current, 0) * {per_day!r} / NULLIF({column}_all - coalesce({column}_current, 0), 0)"

    measures = ["voice_calls", "voice_minutes", "onnet_calls", "offnet_calls", "competitor_calls", "night_calls", "sms",
                "mms", "data_mb", "charge_yuan", "roaming_minutes", "(roaming_minutes > 0)::INTEGER AS roaming_days"]
    sums = ",\n                   ".join(
        f"{in_window(m.split(' AS ')[0])} AS {m.split(' AS ')[-1]}" for m in measures
    )
    trend_sums = ",\n                   ".join(
        f"sum({m}) AS {m}_all, {current(m)} AS {m}_current" for m in ["voice_minutes", "sms", "data_mb", "charge_yuan"]
    )
    last_week = work.as_of - timedelta(days=7)
    last_week_sums = ", ".join(f"sum(if(date > DATE '{last_week}', {m}, 0)) AS {m}_last_week" for m in ("voice_minutes", "data_mb"))

    def last_week_ratio(column: str) -> str:
        return f"(u.{column}_last_week / {min(7, days)}) / NULLIF(u.{column} / {days}, 0)"

    product_columns, product_join = _products_held(con, work, ids)
    columns = column_names(con, subscribers)
    # A status that took effect after the as-of date (a line that left later) was not yet the status then; a line that
    # joined after it was no subscriber yet (the master file is read as of later).
    status = (f"CASE WHEN s.join_date > DATE '{work.as_of}' THEN 'not_joined' "
              f"WHEN s.status_date > DATE '{work.as_of}' THEN 'active' ELSE s.status END"
              if "status_date" in columns else
              f"CASE WHEN s.join_date > DATE '{work.as_of}' THEN 'not_joined' ELSE s.status END")
    commitment = (f"s.commitment_end - DATE '{work.as_of}'" if "commitment_end" in columns else "NULL::INTEGER")
    queries = (
        f"(SELECT subscriber_id, count(*) AS port_out_queries, DATE '{work.as_of}' - max(time::DATE) AS days_since_port_out_query "
        f"FROM {read_sql('events', work.lake_files['events'])} WHERE {ids} AND kind = 'port_out_query' "
        f"AND time::DATE BETWEEN DATE '{work.window_start}' AND DATE '{work.as_of}' GROUP BY subscriber_id)"
        if work.lake_files.get("events") else
        empty_relation(subscriber_id="BIGINT", port_out_queries="BIGINT", days_since_port_out_query="INTEGER")
    )
    select = f"""
        WITH u AS (
            SELECT subscriber_id,
                   {in_window('1')} AS active_days,
                   max(date) AS last_use,
                   {sums},
                   {trend_sums},
                   {last_week_sums}
            FROM {usage} GROUP BY subscriber_id
        )
        SELECT s.subscriber_id,
               coalesce(u.active_days, 0) AS active_days,
               coalesce(u.active_days, 0) / {days} AS active_day_share,
               coalesce(DATE '{work.as_of}' - u.last_use, DATE '{work.as_of}' - DATE '{earliest}' + 1) AS days_since_last_use,
               coalesce(u.voice_calls, 0)::BIGINT AS voice_calls_total,
               coalesce(u.voice_minutes, 0)::DOUBLE AS voice_minutes_total,
               coalesce(u.sms, 0)::BIGINT AS sms_total,
               coalesce(u.mms, 0)::BIGINT AS mms_total,
               coalesce(u.data_mb, 0)::DOUBLE AS data_mb_total,
               coalesce(u.charge_yuan, 0)::DOUBLE AS charge_total,
               coalesce(u.voice_calls, 0)::DOUBLE * {scale} AS voice_calls_30d,
               coalesce(u.voice_minutes, 0)::DOUBLE * {scale} AS voice_minutes_30d,
               coalesce(u.sms, 0)::DOUBLE * {scale} AS sms_30d,
               coalesce(u.mms, 0)::DOUBLE * {scale} AS mms_30d,
               coalesce(u.data_mb, 0)::DOUBLE * {scale} AS data_mb_30d,
               coalesce(u.charge_yuan, 0)::DOUBLE * {scale} AS arpu_30d,
               u.night_calls / NULLIF(u.voice_calls, 0) AS night_call_share,
               u.onnet_calls / NULLIF(u.voice_calls, 0) AS onnet_call_share,
               u.offnet_calls / NULLIF(u.voice_calls, 0) AS offnet_call_share,
               u.competitor_calls / NULLIF(u.voice_calls, 0) AS competitor_call_share,
               coalesce(u.roaming_days, 0) AS roaming_days,
               coalesce(u.roaming_minutes, 0)::DOUBLE * {scale} AS roaming_minutes_30d,
               {trend_of('u.voice_minutes')} AS voice_trend, {trend_of('u.sms')} AS sms_trend,
               {trend_of('u.data_mb')} AS data_trend, {trend_of('u.charge_yuan')} AS charge_trend,
               {last_week_ratio('voice_minutes')} AS voice_last_week_ratio,
               {last_week_ratio('data_mb')} AS data_last_week_ratio,
               date_sub('month', s.join_date, DATE '{work.as_of}') AS tenure_months,
               {work.as_of.year} - s.birth_year AS age,
               coalesce(s.gender, 'U') AS gender,
               s.brand,
               plans.plan_fee,
               s.region_code,
               {status} AS status,
               s.marketing_opt_out,
               {commitment} AS commitment_days_left,
               coalesce(q.port_out_queries, 0) AS port_out_queries,
               q.days_since_port_out_query
               {product_columns}
        FROM (SELECT * FROM {subscribers} WHERE {ids}) s
        -- A handful of distinct plan names: parse each once, not once per subscriber.
        LEFT JOIN (SELECT plan, TRY_CAST(regexp_extract(plan, '(\\d+(?:\\.\\d+)?)元', 1) AS DOUBLE) AS plan_fee
                   FROM (SELECT DISTINCT plan FROM {subscribers} WHERE {ids})) plans USING (plan)
        LEFT JOIN u USING (subscriber_id)
        LEFT JOIN {queries} q USING (subscriber_id){product_join}
    """
    write_atomically(con, select, target)
    subscribers_n, active, minutes, data_mb, charge = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE active_days > 0), sum(voice_minutes_total), sum(data_mb_total), "
        f"sum(charge_total) FROM read_parquet('{target}')"
    ).fetchone()
    return {
        "subscribers": subscribers_n,
        "subscribers_with_usage": active,
        "voice_minutes": round(minutes or 0, 1),
        "data_gb": round((data_mb or 0) / 1024, 2),
        "charge_yuan": round(charge or 0, 2),
    }


def prepare_features(run) -> dict:
    """Pin the trend periods and the days of usage in the window once for the whole run, from what the
    pinned usage batches cover."""
    from django.db.models import Max, Min

    from ..models import IngestBatch

    span = IngestBatch.objects.filter(id__in=run.lake_batches.get("usage_daily", [])).aggregate(
        first=Min("period_start"), last=Max("period_end"))
    return {"trend": trend_periods(as_of=run.as_of_date, window_days=run.window_days, usage_from=span["first"],
                                   usage_to=span["last"]),
            "usage_days": usage_days(as_of=run.as_of_date, window_days=run.window_days, usage_from=span["first"],
                                     usage_to=span["last"])}


register_stage(Stage("features", _("Features"), 30, compute_features, prepare=prepare_features))
register_feature_source(FeatureSource("features", base_features))
