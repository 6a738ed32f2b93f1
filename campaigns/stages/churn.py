"""The churn-warning stage of a snapshot run (离网预警): who is about to close their line or port their number out.

Before the partitions start (prepare), the model is fitted on the latest published snapshot at least
CHURN_WINDOW_DAYS before this run's as-of date: its active subscribers, labelled by whether they closed or ported out
(status and status_date in this run's subscribers) within the window after it. Logistic regression and gradient
boosting are both fitted; the better on the held-out half is kept and stored beside the run's files for the
partitions. Each partition scores its active subscribers into deciles (`churn_risk`, NULL for lines not active) with
each one's top three reasons, and keeps a bitmap per decile; publishing stores those as graded scores, so that
audiences say `churn_risk >= 9`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import joblib
import numpy as np
import pyarrow as pa
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from tagging.bitmaps import publish_graded_scores, write_graded_bitmaps
from tagging.expressions import Type
from tagging.lake.sql import column_names, empty_relation
from tagging.lake.store import read_sql
from tagging.services.snapshots import pinned_paths
from tagging.stages import PartitionWork, Stage, register_stage, snapshot_dir, write_table_atomically
from tagging.stages.features import (
    GRADED_UNIT,
    Feature,
    FeatureSource,
    feature_table_sql,
    partition_feature_files,
    register_feature_source,
    run_feature_files,
)

from .. import churn

STAGE = "churn"
BITMAPS = "churn_bitmaps"
SCORE = "churn_risk"
REASONS = ("churn_reason_1", "churn_reason_2", "churn_reason_3")
# The model stages' scores are not inputs: the propensity deciles and this stage's own.
NOT_INPUTS = frozenset({STAGE, "propensity"})
RECEIVING = {"cu": "中国联通 China Unicom", "ct": "中国电信 China Telecom", "cbn": "中国广电 China Broadnet",
             "closed": "销户 closed the line", "unknown": "携出(运营商未知) ported out, operator not recorded"}
HELD_OUT = 5  # of 10: leavers are a few in a hundred a month, so half is held out for a measurable AUC and lift


def churn_features() -> list[Feature]:
    return [
        Feature(SCORE, Type.NUMBER, GRADED_UNIT, "离网风险", "Churn-risk decile, 1 (least likely) to 10 (most likely) to "
                "close or port out within the churn window, from the run's churn model; NULL for lines not active or "
                "when the run fitted none", "model"),
        Feature("churn_probability", Type.NUMBER, "0-1", "离网概率", "The churn model's probability of leaving within "
                "the churn window", "model"),
        *[Feature(name, Type.TEXT, "", f"离网原因{i}", f"The feature behind the subscriber's churn risk, {ordinal} "
                  "strongest (a feature code, e.g. 'port_out_queries'); NULL when fewer stand out", "model")
          for i, (name, ordinal) in enumerate(zip(REASONS, ("first", "second", "third")), start=1)],
    ]


def model_path(run_id: int) -> Path:
    return snapshot_dir(run_id) / "churn-model.joblib"


# --- prepare: fit the model ------------------------------------------------------------------------------

def _training_data(con: duckdb.DuckDBPyConnection, run, earlier, window_days: int) -> tuple[dict, list]:
    """The earlier snapshot's active subscribers (a deterministic sample) with their model inputs, and whether
    each closed or ported out in the window after it (this run's subscribers say so)."""
    table = feature_table_sql(run_feature_files(earlier.run_id, leaving_out=NOT_INPUTS))
    inputs = churn.available_inputs(column_names(con, table), window_days)
    population = "status = 'active' AND coalesce(tenure_months, 0) >= 0"  # joined by then, not yet gone
    active = con.execute(f"SELECT count(*) FROM {table} WHERE {population}").fetchone()[0]
    step = max(1, -(-active // settings.CHURN_TRAINING_ROWS))
    subscribers = read_sql("subscribers", pinned_paths(run.lake_batches)["subscribers"])
    until = earlier.as_of_date + timedelta(days=window_days)
    left = (f"(SELECT subscriber_id FROM {subscribers} WHERE status IN ('closed', 'ported_out') "
            f"AND status_date > DATE '{earlier.as_of_date}' AND status_date <= DATE '{until}')")
    data = con.execute(
        f"SELECT f.subscriber_id, {', '.join(f'{sql} AS _in{i}' for i, (_, sql, _) in enumerate(inputs))}, "
        f"l.subscriber_id IS NOT NULL AS left_in_window "
        f"FROM {table} f LEFT JOIN {left} l USING (subscriber_id) "
        f"WHERE {population} AND f.subscriber_id % {step} = 0 ORDER BY f.subscriber_id"
    ).fetchnumpy()
    return data, inputs


def _lost_by_operator(con: duckdb.DuckDBPyConnection, run, earlier, window_days: int) -> list[dict]:
    """Everyone active in the earlier snapshot who left in the window after it (not a sample), by where they went: the
    receiving operator of their port_out, or 'closed'; with the monthly revenue they brought then."""
    files = run_feature_files(earlier.run_id)
    table = feature_table_sql({stage: files[stage] for stage in ("features", "value") if files.get(stage)})
    revenue = "monthly_revenue" if "monthly_revenue" in column_names(con, table) else "coalesce(arpu_30d, 0)"
    pinned = pinned_paths(run.lake_batches)
    subscribers = read_sql("subscribers", pinned["subscribers"])
    ports = (f"(SELECT subscriber_id, any_value(operator) AS operator FROM {read_sql('events', pinned['events'])} "
             f"WHERE kind = 'port_out' GROUP BY subscriber_id)" if pinned.get("events")
             else empty_relation(subscriber_id="BIGINT", operator="VARCHAR"))
    until = earlier.as_of_date + timedelta(days=window_days)
    rows = con.execute(f"""
        SELECT CASE WHEN s.status = 'closed' THEN 'closed' ELSE coalesce(p.operator, 'unknown') END AS operator,
               count(*) AS churners, sum({revenue}) AS monthly_revenue
        FROM {table} f JOIN {subscribers} s USING (subscriber_id) LEFT JOIN {ports} p USING (subscriber_id)
        WHERE f.status = 'active' AND s.status IN ('closed', 'ported_out')
          AND s.status_date > DATE '{earlier.as_of_date}' AND s.status_date <= DATE '{until}'
        GROUP BY ALL ORDER BY churners DESC, operator""").fetchall()
    return [{"operator": operator, "label": RECEIVING[operator], "churners": n, "monthly_revenue": round(amount or 0, 2)}
            for operator, n, amount in rows]


def fit_model(run) -> dict:
    """Fit, store and pin the churn model; a run with no snapshot far enough back, or too few leavers, gets none and
    says why (its deciles stay empty: nothing is guessed)."""
    from tagging.models import Snapshot

    from ..models import ChurnModel

    window = run.definitions.get("churn_window_days", settings.CHURN_WINDOW_DAYS)
    earlier = (Snapshot.objects.filter(as_of_date__lte=run.as_of_date - timedelta(days=window))
               .order_by("-as_of_date", "-id").first())

    lost: list[dict] = []

    def skipped(note: str, **counts) -> dict:
        ChurnModel.objects.update_or_create(run=run, defaults=dict(
            status=ChurnModel.Status.SKIPPED, note=note, trained_on=earlier, window_days=window,
            fitted={"lost_by_operator": lost} if lost else {}, learner="",
            auc=None, other_auc=None, top_decile_lift=None,
            **{"training_rows": 0, "churners": 0, "held_out_rows": 0, "held_out_churners": 0, **counts}))
        return {"churn": {}}

    if earlier is None or not run_feature_files(earlier.run_id).get("features"):
        return skipped(f"no snapshot on or before {run.as_of_date - timedelta(days=window)} ({window} days, the churn "
                       "window, before this run) to learn from")
    con = duckdb.connect()
    try:
        data, inputs = _training_data(con, run, earlier, window)
        lost = _lost_by_operator(con, run, earlier, window)
    finally:
        con.close()
    ids = np.asarray(data["subscriber_id"])
    labels = np.asarray(data["left_in_window"], dtype=bool)
    held_out = ids % 10 < HELD_OUT  # the same half in every run: comparable metrics
    counts = {"training_rows": len(ids), "churners": int(labels.sum()), "held_out_rows": int(held_out.sum()),
              "held_out_churners": int(labels[held_out].sum())}
    if not inputs or labels[~held_out].sum() < settings.CHURN_MIN_CHURNERS or labels[held_out].sum() == 0 or labels.all():
        return skipped(f"{int(labels.sum())} of {len(ids)} sampled active subscribers left in the {window} days after "
                       f"{earlier.as_of_date}; at least {settings.CHURN_MIN_CHURNERS} needed among those trained on", **counts)
    values = np.column_stack([np.asarray(data[f"_in{i}"], dtype=float) for i in range(len(inputs))])
    fitted, estimator = churn.fit(values, labels, held_out, inputs=inputs, seed=settings.SEGMENT_SEED)
    path = model_path(run.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, path)  # written by this run, read only by its own partitions
    other = next(learner for learner in churn.LEARNERS if learner != fitted.learner)
    ChurnModel.objects.update_or_create(run=run, defaults=dict(
        status=ChurnModel.Status.FITTED, note="", trained_on=earlier, window_days=window, learner=fitted.learner,
        auc=fitted.auc[fitted.learner], other_auc=fitted.auc[other], top_decile_lift=fitted.top_decile_lift,
        fitted={**fitted.as_dict(), "lost_by_operator": lost}, **counts))
    return {"churn": {"model_file": str(path), **{key: getattr(fitted, key) for key in
                                                   ("input_sql", "features", "mean", "scale", "direction", "importance",
                                                    "cutpoints")}}}


# --- compute one partition -------------------------------------------------------------------------------

def compute_churn(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    fitted = work.definitions.get("churn", {})
    table = feature_table_sql(partition_feature_files(work, leaving_out=NOT_INPUTS))
    inputs = ", ".join(f"{sql} AS _in{i}" for i, sql in enumerate(fitted.get("input_sql", [])))
    data = con.execute(f"SELECT subscriber_id, status = 'active' AS active{', ' + inputs if inputs else ''} "
                       f"FROM {table} ORDER BY subscriber_id").fetchnumpy()
    ids, active = np.asarray(data["subscriber_id"]), np.asarray(data["active"], dtype=bool)
    n = len(ids)
    probability, decile, reasons = np.full(n, np.nan), np.zeros(n, np.uint8), np.full((n, len(REASONS)), -1)
    if fitted and active.any():
        values = np.column_stack([np.asarray(data[f"_in{i}"], dtype=float)[active] for i in range(len(fitted["input_sql"]))])
        probability[active], decile[active], reasons[active] = churn.score(joblib.load(fitted["model_file"]), fitted, values,
                                                                           reasons=len(REASONS))
    features = np.array(fitted.get("features", []) + [None], dtype=object)  # index -1: no reason
    scored = decile > 0
    write_table_atomically(pa.table({
        "subscriber_id": ids,
        SCORE: pa.array(decile, mask=~scored),
        "churn_probability": pa.array(probability, mask=~scored),
        **{name: pa.array(features[reasons[:, j]], type=pa.string()) for j, name in enumerate(REASONS)},
    }), target, con)
    write_graded_bitmaps(con, target, [SCORE] if fitted else [], work.output_path(BITMAPS, work.index))
    return {"subscribers": n, "scored": int(scored.sum())}


# --- publish ---------------------------------------------------------------------------------------------

def publish_churn(run, snapshot) -> dict:
    return {"scores": publish_graded_scores(run_id=run.id, stage=BITMAPS, snapshot=snapshot)}


register_stage(Stage(STAGE, _("Churn warning"), 36, compute_churn, prepare=fit_model, publish=publish_churn))
register_feature_source(FeatureSource(STAGE, churn_features))
