"""The response stage of a snapshot run (响应模型): learning from outcomes.

Before the partitions start (prepare), each product's model is fitted on the contact results of the campaigns that
sold it before this run (their outcomes as the run pinned the lake): among the subscribers a call reached (any
outcome but no_answer), who converted, on each one's features in the snapshot their campaign was frozen from. A
product with fewer than RESPONSE_MIN_CONVERSIONS conversions gets no model (its deciles stay empty). Each partition
scores every subscriber into deciles (`response_<product>`), published as graded scores: a new campaign ranks its
audience with `response_5g_plan >= 8` as it would with the take-up propensity, and its report compares the two on
its random group.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from tagging.bitmaps import publish_graded_scores
from tagging.expressions import Type
from tagging.lake.sql import column_names
from tagging.lake.store import read_sql
from tagging.services.snapshots import pinned_paths
from tagging.stages import PartitionWork, Stage, register_stage
from tagging.stages.features import (
    GRADED_UNIT,
    Feature,
    FeatureSource,
    feature_table_sql,
    product_feature,
    register_feature_source,
    run_feature_files,
)

from .. import propensity
from .propensity import write_product_deciles

STAGE = "response"
BITMAPS = "response_bitmaps"
NOT_INPUTS = frozenset({STAGE, "propensity", "churn"})


def response_name(product_code: str) -> str:
    """`response_5g_plan`: the decile feature and audience score of a product's response model."""
    return "response_" + product_feature(product_code).removeprefix("has_")


def response_features() -> list[Feature]:
    from tagging.models import Product

    return [Feature(response_name(code), Type.NUMBER, GRADED_UNIT, f"{name}营销响应",
                    f"Response decile for {name_en or code}, 1 (least likely) to 10 (most likely) to convert when a "
                    "campaign reaches them, learnt from earlier campaigns' contact results; NULL when the run fitted none",
                    "model")
            for code, name, name_en in Product.objects.order_by("code").values_list("code", "name", "name_en")]


# --- prepare: fit one model per product from earlier campaigns' outcomes ---------------------------------

def _training_data(con: duckdb.DuckDBPyConnection, contacts: str, campaigns) -> tuple[dict, list[tuple[str, str]]]:
    """Every reached contact of the campaigns, with its inputs in the campaign's frozen snapshot and whether it
    converted; the inputs every one of those snapshots has."""
    tables = {c.id: feature_table_sql(run_feature_files(c.snapshot.run_id, leaving_out=NOT_INPUTS)) for c in campaigns}
    columns = set.intersection(*(column_names(con, table) for table in tables.values()))
    inputs = propensity.available_inputs(columns, circle_grades=[])
    if not inputs:
        return {"subscriber_id": np.zeros(0, dtype=np.int64)}, []
    select = ", ".join(f"{sql} AS _in{i}" for i, (_, sql) in enumerate(inputs))
    parts = [f"""SELECT f.subscriber_id, {select}, r.converted FROM {table} f JOIN (
                     SELECT subscriber_id, bool_or(outcome = 'converted') AS converted FROM {contacts}
                     WHERE campaign = '{campaign}' GROUP BY subscriber_id HAVING bool_or(outcome <> 'no_answer')
                 ) r USING (subscriber_id)""" for campaign, table in tables.items()]
    return con.execute(" UNION ALL ".join(parts) + " ORDER BY subscriber_id").fetchnumpy(), inputs


def fit_models(run) -> dict:
    from tagging.models import Product

    from ..models import Campaign, ResponseModel

    contacts_files = pinned_paths(run.lake_batches).get("contact_results")
    fitted: dict[str, dict] = {}
    con = duckdb.connect()
    try:
        for product in Product.objects.order_by("code"):
            earlier = [c for c in Campaign.objects.filter(product=product, snapshot__as_of_date__lte=run.as_of_date)
                       .exclude(status=Campaign.Status.DRAFT).exclude(snapshot__run=run).select_related("snapshot")
                       .order_by("id") if run_feature_files(c.snapshot.run_id).get("features")]

            def skipped(note: str, **counts) -> None:
                ResponseModel.objects.update_or_create(run=run, product=product, defaults=dict(
                    status=ResponseModel.Status.SKIPPED, note=note, campaigns=[c.id for c in earlier], fitted={},
                    auc=None, top_decile_lift=None, **{"training_rows": 0, "positives": 0, **counts}))

            if not earlier or not contacts_files:
                skipped("no earlier campaign of the product with contact results to learn from")
                continue
            data, inputs = _training_data(con, read_sql("contact_results", contacts_files), earlier)
            labels = np.asarray(data.get("converted", []), dtype=bool)
            counts = {"training_rows": len(labels), "positives": int(labels.sum())}
            if not inputs or labels.sum() < settings.RESPONSE_MIN_CONVERSIONS or labels.all():
                skipped(f"{int(labels.sum())} conversions among {len(labels)} reached contacts of campaigns "
                        f"{', '.join(f'#{c.id}' for c in earlier)}; at least {settings.RESPONSE_MIN_CONVERSIONS} needed",
                        **counts)
                continue
            values = np.column_stack([np.asarray(data[f"_in{i}"], dtype=float) for i in range(len(inputs))])
            held_out = np.asarray(data["subscriber_id"]) % 10 < 3
            model = propensity.fit(values, labels, held_out, inputs=inputs, seed=settings.SEGMENT_SEED)
            ResponseModel.objects.update_or_create(run=run, product=product, defaults=dict(
                status=ResponseModel.Status.FITTED, note="", campaigns=[c.id for c in earlier], auc=model.auc,
                top_decile_lift=model.top_decile_lift, fitted=model.as_dict(), **counts))
            fitted[product.code] = model.scoring()
    finally:
        con.close()
    return {STAGE: fitted}


# --- compute one partition -------------------------------------------------------------------------------

def compute_response(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    return write_product_deciles(con, work, target, models=work.definitions.get(STAGE, {}), name_of=response_name,
                                 leaving_out=NOT_INPUTS, bitmaps=BITMAPS)


def publish_response(run, snapshot) -> dict:
    publish_graded_scores(run_id=run.id, stage=BITMAPS, snapshot=snapshot)
    return {"models": len(run.definitions.get(STAGE, {}))}


register_stage(Stage(STAGE, _("Response models"), 38, compute_response, prepare=fit_models, publish=publish_response))
register_feature_source(FeatureSource(STAGE, response_features))
