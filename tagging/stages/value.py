"""The customer-value stage of a snapshot run (客户价值): each active subscriber's value score and tier, and the
monthly revenue audiences, campaigns and segments add up.

Before the partitions start (prepare), the scale is fitted on a deterministic sample of the run's active subscribers
(their features are written by then): each input's percentiles and the scores where the tiers start
(VALUE_TIER_SHARES of the headcount). Each partition then scores its subscribers; lines not active get no score, no
tier and no revenue. The partitions' summaries add up to each tier's headcount and revenue.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from ..expressions import Type
from ..lake.store import files_sql
from ..value import TIER_NAMES, TIERS, VALUE_INPUTS, fit, score, tier
from . import PartitionWork, Stage, register_stage, stage_files, write_table_atomically
from .features import Feature, FeatureSource, register_feature_source

STAGE = "value"
INPUT_SQL = ", ".join(f"{sql} AS {name}" for name, sql, _ in VALUE_INPUTS)
SAMPLE_ROWS = 500_000  # enough for percentiles to a tenth of a point


def value_features() -> list[Feature]:
    tiers = ", ".join(f"'{code}' ({TIER_NAMES[code][0]})" for code in TIERS)
    shares = settings.VALUE_TIER_SHARES
    return [
        Feature("value_score", Type.NUMBER, "0-100", "客户价值分", "Where the subscriber stands among the run's active "
                "subscribers on spend (ARPU, 55%), tenure, the spend's trend and products held (15% each), as the "
                "weighted mean of their percentile ranks; NULL for lines not active", STAGE),
        Feature("value_tier", Type.TEXT, "", "客户价值等级", f"Value tier: {tiers}; the top {shares[0]:.0%} of active "
                f"subscribers by value score are high, the next {shares[1]:.0%} mid; NULL for lines not active", STAGE),
        Feature("monthly_revenue", Type.NUMBER, "yuan / 30 days", "月收入", "The revenue the line brings per 30 days "
                "(its ARPU) while active, 0 once it is not: what audiences and campaigns add up as revenue at stake",
                STAGE),
    ]


def prepare_value(run) -> dict:
    files = stage_files(run.id, "features")
    con = duckdb.connect()
    try:
        table = f"read_parquet({files_sql(files)})"
        active = con.execute(f"SELECT count(*) FROM {table} WHERE status = 'active'").fetchone()[0]
        step = max(1, -(-active // SAMPLE_ROWS))
        sample = con.execute(f"SELECT {INPUT_SQL} FROM {table} WHERE status = 'active' AND subscriber_id % {step} = 0"
                             ).fetchnumpy()
    finally:
        con.close()
    if not len(sample["spend"]):
        return {STAGE: {}}
    values = np.column_stack([np.asarray(sample[name], dtype=float) for name, _, _ in VALUE_INPUTS])
    return {STAGE: fit(values, shares=tuple(settings.VALUE_TIER_SHARES)).as_dict()}


def compute_value(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    scale = work.definitions.get(STAGE, {})
    data = con.execute(f"SELECT subscriber_id, status = 'active' AS active, coalesce(arpu_30d, 0) AS arpu, {INPUT_SQL} "
                       f"FROM read_parquet('{work.earlier_output('features')}') ORDER BY subscriber_id").fetchnumpy()
    active = np.asarray(data["active"], dtype=bool) & bool(scale)
    scores = np.full(len(active), np.nan)
    tiers = np.full(len(active), None, dtype=object)
    if active.any():
        values = np.column_stack([np.asarray(data[name], dtype=float)[active] for name, _, _ in VALUE_INPUTS])
        scores[active] = score(values, scale["percentiles"])
        tiers[active] = tier(scores[active], scale["tier_starts"])
    revenue = np.where(active, np.asarray(data["arpu"], dtype=float), 0.0)
    write_table_atomically(pa.table({
        "subscriber_id": np.asarray(data["subscriber_id"]),
        "value_score": pa.array(scores, mask=~active),
        "value_tier": pa.array(tiers, type=pa.string()),
        "monthly_revenue": revenue,
    }), target, con)
    summary = {"subscribers": len(active), "scored": int(active.sum()), "revenue": round(float(revenue.sum()), 2)}
    for code in TIERS:
        members = tiers == code
        summary[f"{code}_subscribers"] = int(members.sum())
        summary[f"{code}_revenue"] = round(float(revenue[members].sum()), 2)
    return summary


register_stage(Stage(STAGE, _("Customer value"), 37, compute_value, prepare=prepare_value))
register_feature_source(FeatureSource(STAGE, value_features))
