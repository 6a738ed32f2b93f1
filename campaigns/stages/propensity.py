"""The propensity stage of a snapshot run: one model per product, every subscriber scored into deciles.

Before the partitions start (prepare), each product's model is fitted on the previous published snapshot's
features, labelled by who took the product up between that snapshot and this run's as-of date (among
those who did not hold it then). A run with no earlier snapshot, or a product with too few take-ups,
gets no model and its decile stays empty (NULL): nothing is guessed. Each partition scores its
subscribers in one DuckDB query and keeps a bitmap per (product, decile); publishing stores those as
graded scores, so that audiences say `propensity_5g_plan >= 8` and rules may use the deciles as features.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from tagging.bitmaps import publish_graded_scores, write_graded_bitmaps
from tagging.expressions import Type
from tagging.lake.sql import column_names, empty_relation
from tagging.lake.store import read_sql
from tagging.services.snapshots import pinned_paths
from tagging.stages import PartitionWork, Stage, register_stage, write_atomically
from tagging.stages.circles import circle_score_name
from tagging.stages.features import (
    GRADED_UNIT,
    Feature,
    FeatureSource,
    feature_table_sql,
    partition_feature_files,
    product_feature,
    register_feature_source,
    run_feature_files,
)

from .. import propensity

STAGE = "propensity"
BITMAPS = "propensity_bitmaps"


def score_name(product_code: str) -> str:
    """`propensity_5g_plan`: the decile feature and audience score of a product."""
    return "propensity_" + product_feature(product_code).removeprefix("has_")


def propensity_features() -> list[Feature]:
    from tagging.models import Product

    return [Feature(score_name(code), Type.NUMBER, GRADED_UNIT, f"{name}办理倾向",
                    f"Propensity decile for {name_en or code}, 1 (least likely) to 10 (most likely) to take it up, "
                    "from the run's logistic model; NULL when the run fitted none", "model")
            for code, name, name_en in Product.objects.order_by("code").values_list("code", "name", "name_en")]


# --- prepare: fit one model per product -----------------------------------------------------------------

def _training_data(con: duckdb.DuckDBPyConnection, run, previous) -> tuple[dict, list[tuple[str, str]]]:
    """The previous snapshot's active subscribers (a deterministic sample), their model inputs, the
    products they held, and the products they took up by this run's as-of date."""
    from tagging.models import Product

    table = feature_table_sql(run_feature_files(previous.run_id, leaving_out=frozenset({STAGE})))
    columns = column_names(con, table)
    products = list(Product.objects.order_by("code").values_list("code", flat=True))
    inputs = propensity.available_inputs(columns, circle_grades=[circle_score_name(code) for code in products])
    held = [product_feature(code) for code in products]
    active = con.execute(f"SELECT count(*) FROM {table} WHERE status = 'active'").fetchone()[0]
    step = max(1, -(-active // settings.PROPENSITY_TRAINING_ROWS))
    files = pinned_paths(run.lake_batches)
    took = (
        f"(SELECT subscriber_id, list(DISTINCT product_code) AS took FROM {read_sql('subscriptions', files['subscriptions'])} "
        f"WHERE start_date > DATE '{previous.as_of_date}' AND start_date <= DATE '{run.as_of_date}' GROUP BY subscriber_id)"
        if files.get("subscriptions") else empty_relation(subscriber_id="BIGINT", took="VARCHAR[]")
    )
    select_held = ", ".join(f'coalesce("{c}", false) AS "{c}"' if c in columns else f'false AS "{c}"' for c in held)
    select_took = ", ".join(f"coalesce(list_contains(took, '{code}'), false) AS \"took_{code}\"" for code in products)
    data = con.execute(
        f"SELECT subscriber_id, {', '.join(f'{sql} AS _in{i}' for i, (_, sql) in enumerate(inputs))}, {select_held}, "
        f"{select_took} FROM {table} f LEFT JOIN {took} t USING (subscriber_id) "
        f"WHERE status = 'active' AND subscriber_id % {step} = 0 ORDER BY subscriber_id"
    ).fetchnumpy()
    return data, inputs


def fit_models(run) -> dict:
    """Fit and store each product's model; return what the partitions need to score (pinned)."""
    from tagging.models import Product, Snapshot

    from ..models import PropensityModel

    previous = Snapshot.objects.filter(as_of_date__lt=run.as_of_date).order_by("-as_of_date", "-id").first()
    products = list(Product.objects.order_by("code"))
    fitted: dict[str, dict] = {}

    def skipped(product, note: str, **counts) -> None:
        PropensityModel.objects.update_or_create(run=run, product=product, defaults=dict(
            status=PropensityModel.Status.SKIPPED, note=note, trained_on=previous, fitted={}, auc=None,
            top_decile_lift=None, **{"training_rows": 0, "positives": 0, "horizon_days": 0, **counts}))

    if previous is None or not run_feature_files(previous.run_id).get("features"):
        for product in products:
            skipped(product, "no earlier snapshot to learn from: the first run scores nobody")
        return {"propensity": {}}
    con = duckdb.connect()
    try:
        data, inputs = _training_data(con, run, previous)
    finally:
        con.close()
    horizon = (run.as_of_date - previous.as_of_date).days
    values = np.column_stack([np.asarray(data[f"_in{i}"], dtype=float) for i in range(len(inputs))]) \
        if inputs else np.zeros((len(data["subscriber_id"]), 0))
    ids = np.asarray(data["subscriber_id"])
    held_out = ids % 10 < 3  # the same 30% for every product and every run: comparable metrics
    for product in products:
        eligible = ~np.asarray(data[product_feature(product.code)], dtype=bool)
        labels = np.asarray(data[f"took_{product.code}"], dtype=bool)[eligible]
        positives = int(labels.sum())
        counts = {"training_rows": int(eligible.sum()), "positives": positives, "horizon_days": horizon}
        if not inputs or positives < settings.PROPENSITY_MIN_TAKE_UPS or positives == len(labels):
            skipped(product, f"{positives} take-ups in {horizon} days after {previous.as_of_date} among "
                             f"{len(labels)} sampled non-holders; at least {settings.PROPENSITY_MIN_TAKE_UPS} needed",
                    **counts)
            continue
        model = propensity.fit(values[eligible], labels, held_out[eligible], inputs=inputs, seed=settings.SEGMENT_SEED)
        PropensityModel.objects.update_or_create(run=run, product=product, defaults=dict(
            status=PropensityModel.Status.FITTED, note="", trained_on=previous, auc=model.auc,
            top_decile_lift=model.top_decile_lift, fitted=model.as_dict(), **counts))
        fitted[product.code] = model.scoring()
    return {"propensity": fitted}


# --- compute one partition -------------------------------------------------------------------------------

def write_product_deciles(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path, *, models: dict,
                          name_of, leaving_out: frozenset[str], bitmaps: str) -> dict:
    """One partition of a per-product model stage (propensity, response): every product's decile column, empty
    (NULL) without a model so that rules naming one read NULL rather than fail, and a bitmap per fitted decile."""
    from tagging.models import Product

    codes = list(Product.objects.order_by("code").values_list("code", flat=True))
    table = feature_table_sql(partition_feature_files(work, leaving_out=leaving_out))
    columns = "".join(f', {propensity.decile_sql(models[code]) if code in models else "NULL::UTINYINT"} '
                      f'AS "{name_of(code)}"' for code in codes)
    write_atomically(con, f"SELECT subscriber_id{columns} FROM {table}", target)
    write_graded_bitmaps(con, target, [name_of(code) for code in models], work.output_path(bitmaps, work.index))
    return {"subscribers": con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0],
            "models": len(models)}


def compute_propensity(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    return write_product_deciles(con, work, target, models=work.definitions.get(STAGE, {}), name_of=score_name,
                                 leaving_out=frozenset({STAGE}), bitmaps=BITMAPS)


# --- publish ---------------------------------------------------------------------------------------------

def publish_propensity(run, snapshot) -> dict:
    publish_graded_scores(run_id=run.id, stage=BITMAPS, snapshot=snapshot)
    return {"models": len(run.definitions.get("propensity", {}))}


register_stage(Stage(STAGE, _("Propensity"), 35, compute_propensity, prepare=fit_models, publish=publish_propensity))
register_feature_source(FeatureSource(STAGE, propensity_features))
