"""Next best offer (下一个最佳推荐): for a subscriber, the product they do not hold with the highest expected value,
the chance they take it up times what a conversion is worth.

The chance is their propensity decile's take-up rate in the model's own training population (each fitted model keeps
its ten rates: a calibrated probability over the model's horizon, the same horizon for every product of a run); the
worth is CAMPAIGN_VALUE_MONTHS of the product's monthly fee. Products without a fitted model, without a fee, or held
already are never offered; nor is the product the subscriber is being offered already (a campaign's own).
"""

from __future__ import annotations

from django.conf import settings

from tagging.lake import store
from tagging.models import Product
from tagging.stages import stage_files
from tagging.stages.features import product_feature

from .models import PropensityModel
from .stages.propensity import STAGE as PROPENSITY
from .stages.propensity import score_name


def conversion_value(product: Product) -> float | None:
    """What selling the product once is worth: CAMPAIGN_VALUE_MONTHS of its monthly fee; None without a fee."""
    fee = float(product.monthly_fee_yuan)
    return fee * settings.CAMPAIGN_VALUE_MONTHS if fee > 0 else None


def offer_table(run_id: int, *, leaving_out: str | None = None) -> list[tuple[str, str, list[float], float]]:
    """(code, name, rate per decile 1-10, value per conversion) of each product a run's model can offer."""
    models = (PropensityModel.objects.filter(run_id=run_id, status=PropensityModel.Status.FITTED)
              .exclude(product__code=leaving_out).select_related("product").order_by("product__code"))
    return [(m.product.code, m.product.name, [r or 0.0 for r in m.fitted["decile_rates"]], conversion_value(m.product))
            for m in models if m.fitted.get("decile_rates") and conversion_value(m.product)]


def next_best_offer_sql(run_id: int, *, leaving_out: str | None = None, where: str = "true") -> str | None:
    """A relation (subscriber_id, next_best_offer, next_best_offer_name, offer_probability, offer_value) over the run's
    subscribers meeting `where` (a condition on p.subscriber_id); None when the run can offer nothing."""
    offers = offer_table(run_id, leaving_out=leaving_out)
    scores, features = stage_files(run_id, PROPENSITY), stage_files(run_id, "features")
    if not offers or not scores or not features:
        return None

    def literal(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    candidates = ", ".join(
        f"CASE WHEN NOT coalesce(f.\"{product_feature(code)}\", false) AND p.\"{score_name(code)}\" IS NOT NULL THEN "
        f"{{'value': {rates!r}[p.\"{score_name(code)}\"] * {value!r}, 'probability': {rates!r}[p.\"{score_name(code)}\"], "
        f"'code': {literal(code)}, 'name': {literal(name)}}} END"
        for code, name, rates, value in offers)
    return f"""(SELECT subscriber_id, best.code AS next_best_offer, best.name AS next_best_offer_name,
                       round(best.probability, 4) AS offer_probability, round(best.value, 2) AS offer_value
                FROM (SELECT subscriber_id, list_sort(list_filter([{candidates}], lambda c: c IS NOT NULL AND c.value > 0),
                                                      'DESC')[1] AS best
                      FROM read_parquet({store.files_sql(scores)}) p
                      JOIN read_parquet({store.files_sql(features)}) f USING (subscriber_id)
                      WHERE {where})
                WHERE best IS NOT NULL)"""


def next_best_offer(subscriber_id: int, run_id: int) -> dict | None:
    """One subscriber's next best offer in a run (none for a subscriber who opted out of marketing)."""
    relation = next_best_offer_sql(run_id, where=f"p.subscriber_id = {int(subscriber_id)}")
    if relation is None:
        return None
    con = store.reader()
    try:
        row = con.execute(f"SELECT o.next_best_offer, o.next_best_offer_name, o.offer_probability, o.offer_value "
                          f"FROM {relation} o JOIN read_parquet({store.files_sql(stage_files(run_id, 'features'))}) f "
                          f"USING (subscriber_id) WHERE NOT coalesce(f.marketing_opt_out, false)").fetchone()
    finally:
        con.close()
    if row is None:
        return None
    code, name, probability, value = row
    name_en = Product.objects.filter(code=code).values_list("name_en", flat=True).first()
    return {"product": code, "name": name, "name_en": name_en, "probability": probability, "expected_value": value}


def profile_offer(*, subscriber_id: int, snapshot) -> dict | None:
    """The profile's line: the next best offer in the current snapshot."""
    return next_best_offer(subscriber_id, snapshot.run_id) if snapshot is not None else None
