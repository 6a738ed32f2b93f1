"""Campaigns' reads: the campaigns and rules a user sees, campaign target lists on the micro-area map, a
campaign's result (target against control group) and the product association matrix.

A campaign's result: the target group against the control group, in the caller's districts.

What counts as success depends on the control group (Campaign.control_kind):
- a holdout is never contacted, so whole groups are compared on taking the product up (a subscription
  to it starting between the campaign's start and end dates, in the current lake): what contacting added;
- a random group is contacted like the targets, so the conversions field teams reported are compared
  among those contacted: what the targeting added (the published case's 23.12% against 8.18%).
Contacts and reported outcomes are counted beside, and one group's results are split by the product's
propensity decile in the frozen snapshot (the gains chart): a random group's, or else the targets'.
"""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db.models import Count

from microarea.selectors import TargetList, visible_districts
from tagging.lake import store
from tagging.lake.sql import column_names, empty_relation
from tagging.models import Product, Region, Snapshot
from tagging.services.audiences import current_snapshot
from tagging.stages import stage_files, stage_sql
from tagging.stages.features import product_feature
from tagging.stages.value import STAGE as VALUE_STAGE

from . import performance
from .association import association_rules, seed_audience
from .evaluation import Group, compare, decile_auc, gains_table
from .models import Campaign, SavedAudience
from .offers import conversion_value
from .performance import CampaignResult
from .services.campaigns import campaign_districts, contacted_sql, residents_sql, target_list_sql, targets_path
from .stages.churn import SCORE as CHURN_SCORE
from .stages.churn import STAGE as CHURN_STAGE
from .stages.propensity import STAGE as PROPENSITY
from .stages.propensity import score_name
from .stages.response import STAGE as RESPONSE_STAGE
from .stages.response import response_name


def campaigns_of(user):
    """The campaigns of the user's regions, with what their lists and pages show."""
    return Campaign.objects.visible_to(user).select_related("product", "owner", "snapshot").prefetch_related("regions")


def saved_audiences_of(user):
    return SavedAudience.objects.visible_to(user).select_related("owner").prefetch_related("regions")


def triggers_with_counts(campaign: Campaign):
    """The campaign's event rules, each with how many subscribers it added."""
    return campaign.triggers.annotate(added=Count("targets")).select_related("micro_area")


# --- target lists on the micro-area map ---------------------------------------------------------------------


def _on_map(campaign: Campaign) -> TargetList:
    offer = campaign.product.name if campaign.product else campaign.get_purpose_display()
    return TargetList(id=campaign.id, label=f"{campaign.name} · {offer} ({campaign.get_status_display()})",
                      members_sql=f"(SELECT subscriber_id FROM {target_list_sql(campaign)} WHERE {contacted_sql(campaign)})")


def _mapped(user):
    return (Campaign.objects.visible_to(user).exclude(status=Campaign.Status.DRAFT).filter(snapshot__isnull=False)
            .select_related("product"))


def campaigns_on_map(user, *, limit: int = 100) -> list[TargetList]:
    """The latest frozen campaigns of the user's regions, newest first, as the lists field teams contact (what
    their exports hold) that the micro-area map counts where they live. Older ones stay reachable by id."""
    return [_on_map(c) for c in _mapped(user)[:limit] if targets_path(c).exists()]


def campaign_on_map(user, campaign_id: int) -> TargetList | None:
    campaign = _mapped(user).filter(pk=campaign_id).first()
    return _on_map(campaign) if campaign is not None and targets_path(campaign).exists() else None


# --- a campaign's result ------------------------------------------------------------------------------------


COUNTS = ("members", "converted", "contacted", "reported_converted", "revenue", "revenue_converted")
BASIS = {
    Campaign.ControlKind.HOLDOUT: ("members", "converted", "uptake of the product during the campaign, whole groups"),
    Campaign.ControlKind.RANDOM: ("contacted", "reported_converted", "conversions reported by field teams, of those contacted"),
}


def retention_horizon(campaign: Campaign):
    """The last day a retention campaign's groups are watched for leaving: the churn window after its end."""
    return campaign.end_date + timedelta(days=settings.CHURN_WINDOW_DAYS)


def _successes(campaign: Campaign) -> tuple[str, dict, str, str, str]:
    """What counts as a success in the lake, as a relation of subscriber ids with its parameters; the snapshot stage
    and score its gains are split by; what the comparison is made on, in words.

    A sale campaign's success is the product's uptake between the start and end dates; a retention campaign's (whose
    control is a holdout, never offered anything) is leaving, closing or porting out, from the start to the churn
    window after the end, as the subscriber master's status says: a lower rate in the target group is the offer's
    effect, and the comparison's `lift` is the ratio of churn rates."""
    if campaign.purpose == Campaign.Purpose.RETENTION:
        subscribers = store.current_sql("subscribers")
        horizon = retention_horizon(campaign)
        relation = (f"(SELECT subscriber_id FROM {subscribers} WHERE status IN ('closed', 'ported_out') "
                    f"AND status_date BETWEEN $start AND $end)")
        return (relation, {"start": campaign.start_date, "end": horizon}, CHURN_STAGE, CHURN_SCORE,
                f"closing or porting out from {campaign.start_date} to {horizon}, whole groups")
    subscriptions = store.current_sql("subscriptions")
    if not subscriptions:
        return (empty_relation(subscriber_id="BIGINT"), {}, PROPENSITY, score_name(campaign.product.code),
                BASIS[Campaign.ControlKind(campaign.control_kind)][2])
    return (f"(SELECT DISTINCT subscriber_id FROM {subscriptions} WHERE product_code = $product "
            f"AND start_date BETWEEN $start AND $end)",
            {"product": campaign.product.code, "start": campaign.start_date, "end": campaign.end_date},
            PROPENSITY, score_name(campaign.product.code), BASIS[Campaign.ControlKind(campaign.control_kind)][2])


def campaign_evaluation(*, campaign: Campaign, user, area=None) -> dict:
    """The comparison in the user's districts, or among the residents of one of their micro-areas."""
    districts = campaign_districts(campaign, user)
    residents, hexes = residents_sql(campaign, area) if area is not None else ("true", {})
    contacts = store.current_sql("contact_results")
    took, success_params, score_stage, score, basis = _successes(campaign)
    contacted = (f"(SELECT subscriber_id, bool_or(outcome = 'converted') AS said_converted FROM {contacts} "
                 f"WHERE campaign = $campaign GROUP BY subscriber_id)" if contacts else
                 empty_relation(subscriber_id="BIGINT", said_converted="BOOLEAN"))
    scores = stage_files(campaign.snapshot.run_id, score_stage)
    decile = (f"(SELECT subscriber_id, \"{score}\" AS decile FROM read_parquet({store.files_sql(scores)}))"
              if scores else empty_relation(subscriber_id="BIGINT", decile="UTINYINT"))
    # A sale campaign's response deciles too (learnt from earlier campaigns' outcomes), to set against the propensity.
    responses = stage_files(campaign.snapshot.run_id, RESPONSE_STAGE) if campaign.product else []
    response = (f"(SELECT subscriber_id, \"{response_name(campaign.product.code)}\" AS decile "
                f"FROM read_parquet({store.files_sql(responses)}))" if responses
                else empty_relation(subscriber_id="BIGINT", decile="UTINYINT"))
    values = stage_files(campaign.snapshot.run_id, VALUE_STAGE)
    revenue = (f"(SELECT subscriber_id, monthly_revenue FROM read_parquet({store.files_sql(values)}))" if values
               else empty_relation(subscriber_id="BIGINT", monthly_revenue="DOUBLE"))
    con = store.reader()
    try:
        rows = con.execute(f"""
            SELECT t.region_code, t."group", d.decile, r.decile AS response_decile, count(*) AS members,
                   count(k.subscriber_id) AS converted,
                   count(c.subscriber_id) AS contacted, count(*) FILTER (WHERE c.said_converted) AS reported_converted,
                   coalesce(sum(v.monthly_revenue), 0) AS revenue,
                   coalesce(sum(v.monthly_revenue) FILTER (WHERE k.subscriber_id IS NOT NULL), 0) AS revenue_converted
            FROM {target_list_sql(campaign)} t
            LEFT JOIN {took} k USING (subscriber_id) LEFT JOIN {contacted} c USING (subscriber_id)
            LEFT JOIN {decile} d USING (subscriber_id) LEFT JOIN {response} r USING (subscriber_id)
            LEFT JOIN {revenue} v USING (subscriber_id)
            WHERE t.region_code IN (SELECT unnest($districts::VARCHAR[])) AND {residents}
            GROUP BY ALL ORDER BY ALL
        """, {"districts": districts, **hexes, **success_params, **({"campaign": str(campaign.id)} if contacts else {})}
        ).fetchall()
    finally:
        con.close()
    names = dict(Region.objects.filter(code__in=districts).values_list("code", "name"))
    base, success, _ = BASIS[Campaign.ControlKind(campaign.control_kind)]
    retention = campaign.purpose == Campaign.Purpose.RETENTION

    def summary(selected) -> dict:
        groups = {name: dict.fromkeys(COUNTS, 0) for name in ("target", "control")}
        for _, group, _, _, *counts in selected:
            for key, value in zip(COUNTS, counts):
                groups[group][key] += value
        for counts in groups.values():  # what the comparison is made of, under names that do not depend on it
            counts["base"], counts["successes"] = counts[base], counts[success]
        result = compare(Group(groups["target"]["base"], groups["target"]["successes"]),
                         Group(groups["control"]["base"], groups["control"]["successes"])).as_dict()
        if retention:
            result.update(retention_effect(groups["target"], groups["control"], result))
        return {**groups, **result}

    # A random group spans every decile, so its gains show how the model ranks people nobody selected;
    # against a holdout, the targets' own deciles are all there is; a retention campaign's holdout, never offered
    # anything, shows how the churn deciles rank who leaves of themselves.
    gains_group = "control" if campaign.control_kind == Campaign.ControlKind.RANDOM or retention else "target"

    def by_decile(column: int) -> dict[int, tuple[int, int]]:
        totals: dict[int, list[int]] = {}
        for row in rows:
            group, grade, counts = row[1], row[column], row[4:]
            if group == gains_group and grade is not None:
                cell = totals.setdefault(int(grade), [0, 0])
                cell[0] += counts[COUNTS.index(base)]
                cell[1] += counts[COUNTS.index(success)]
        return {grade: tuple(cell) for grade, cell in totals.items()}

    propensity_gains, response_gains = by_decile(2), by_decile(3)
    return {
        "campaign": campaign.id, "purpose": campaign.purpose, "product": campaign.product.code if campaign.product else None,
        "period": [str(campaign.start_date), str(campaign.end_date)],
        "watched_until": str(retention_horizon(campaign)) if retention else str(campaign.end_date),
        "area": {"id": area.id, "name": area.name} if area is not None else None,
        "control_kind": campaign.control_kind, "basis": basis, "base": base, "success": success, "score": score,
        "overall": summary(rows),
        "by_district": [{"region": code, "name": names.get(code, code), **summary([r for r in rows if r[0] == code])}
                        for code in districts],
        "gains_group": gains_group, "gains": gains_table(propensity_gains), "gains_auc": decile_auc(propensity_gains),
        # The response model's ranking of the same group, when the frozen snapshot had one for the product: on a
        # random group both rank people nobody selected, so the two curves and AUCs compare fairly.
        "response_gains": gains_table(response_gains) if response_gains else [],
        "response_auc": decile_auc(response_gains),
    }


def retention_effect(target: dict, control: dict, comparison: dict) -> dict:
    """What a retention offer did: the reduction of the churn rate (1 - the ratio of rates) with its 95% interval,
    and the monthly revenue kept: the target group's revenue times how much less of it left than of the control's."""
    def share_lost(group: dict) -> float | None:
        return group["revenue_converted"] / group["revenue"] if group["revenue"] else None

    lift, low, high = comparison["lift"], comparison["lift_low"], comparison["lift_high"]
    target_lost, control_lost = share_lost(target), share_lost(control)
    return {
        "reduction": None if lift is None else 1 - lift,
        "reduction_low": None if high is None else 1 - high, "reduction_high": None if low is None else 1 - low,
        "revenue_kept": (None if target_lost is None or control_lost is None
                         else round((control_lost - target_lost) * target["revenue"], 2)),
    }


# --- the product association matrix ------------------------------------------------------------------------


def product_association(*, user, snapshot: Snapshot | None = None) -> dict:
    snapshot = snapshot or current_snapshot()
    files = stage_files(snapshot.run_id, "features")
    con = store.reader()
    try:
        columns = column_names(con, f"read_parquet({store.files_sql(files)})")
        codes = [c for c in Product.objects.order_by("code").values_list("code", flat=True) if product_feature(c) in columns]
        held = [f'"{product_feature(c)}"' for c in codes]
        # One pass: each product's holders and every pair's, among active subscribers of the user's districts.
        sums = [f"count(*) FILTER (WHERE {a})" for a in held] + [f"count(*) FILTER (WHERE {a} AND {b})" for a in held for b in held]
        counts = con.execute(
            f"SELECT count(*), {', '.join(sums) or '0'} FROM read_parquet({store.files_sql(files)}) "
            f"WHERE status = 'active' AND region_code IN (SELECT unnest($districts::VARCHAR[]))",
            {"districts": visible_districts(user)}).fetchone()
    finally:
        con.close()
    n, k = counts[0], len(codes)
    holders, both = np.array(counts[1:1 + k]), np.array(counts[1 + k:]).reshape(k, k)
    rules = association_rules(codes, n, holders, both)
    return {
        "snapshot": str(snapshot.as_of_date), "subscribers": n,
        "products": [{"code": c, "holders": int(h), "share": h / n if n else None} for c, h in zip(codes, holders)],
        "rules": rules,
        "seed_audiences": {c: seed_audience(c, rules, min_lift=settings.ASSOCIATION_MIN_LIFT,
                                            min_support=settings.ASSOCIATION_MIN_SUPPORT) for c in codes},
    }


def churn_model_report(snapshot: Snapshot) -> dict:
    """The churn model a snapshot's run fitted (or why it fitted none): which learner won and by how much, how well
    it ranks held-out subscribers, and its drivers named in the feature catalogue's words, with how each decile
    stands on them (standardised means: +1 is a standard deviation above the population)."""
    from .models import ChurnModel

    model = ChurnModel.objects.filter(run_id=snapshot.run_id).select_related("trained_on").first()
    if model is None:
        return {"snapshot": snapshot.id, "status": "absent", "note": "this snapshot's run had no churn stage"}
    report = {
        "snapshot": snapshot.id, "status": model.status, "note": model.note,
        "trained_on": model.trained_on.as_of_date.isoformat() if model.trained_on else None,
        "window_days": model.window_days, "training_rows": model.training_rows, "churners": model.churners,
        "held_out_rows": model.held_out_rows, "held_out_churners": model.held_out_churners,
        # Who left in the window the model learnt from, by where they went, with the revenue that went with them.
        "lost_by_operator": model.fitted.get("lost_by_operator", []),
    }
    if model.status != ChurnModel.Status.FITTED:
        return report
    return {**report, "learner": model.learner, "auc": model.auc, "auc_by_learner": model.fitted["auc"],
            "won_by": round(model.auc - model.other_auc, 4), "top_decile_lift": model.top_decile_lift,
            "drivers": churn_drivers(model)}


def churn_drivers(model) -> list[dict]:
    """A fitted churn model's inputs that matter (positive permutation importance), most important first, named by
    the catalogue's label of their feature, with each decile's standardised mean of the input."""
    from tagging.stages.features import catalogue

    fitted = model.fitted
    features = {f.name: f for f in catalogue()}
    drivers = [{"input": name, "feature": feature, "label": features[feature].label if feature in features else feature,
                "description": features[feature].description if feature in features else "",
                "importance": weight, "direction": "higher" if sign > 0 else "lower",
                "by_decile": {decile: profile[i] for decile, profile in fitted["decile_profile"].items()}}
               for i, (name, feature, weight, sign) in enumerate(zip(fitted["inputs"], fitted["features"],
                                                                     fitted["importance"], fitted["direction"]))
               if weight > 0]
    return sorted(drivers, key=lambda row: -row["importance"])


# --- campaign performance over time -------------------------------------------------------------------------

# An audience ranked by a model: a propensity or churn-risk decile compared to a grade.
MODEL_SCORE = re.compile(r"\b(propensity_\w+|churn_risk)\s*(>=|>|==|<=|<|!=|in\b)")


def model_targeted(campaign: Campaign) -> bool:
    return bool(MODEL_SCORE.search(campaign.audience))


def _value_per_conversion(campaign: Campaign, target: dict) -> float | None:
    """The campaign's own value, else CAMPAIGN_VALUE_MONTHS of the product's fee, or for retention of a target's
    monthly revenue (what a leaver kept keeps paying); None when there is nothing to value by."""
    if campaign.value_per_conversion is not None:
        return float(campaign.value_per_conversion)
    if campaign.purpose == Campaign.Purpose.RETENTION:
        return (round(target["revenue"] / target["members"] * settings.CAMPAIGN_VALUE_MONTHS, 2)
                if target["members"] and target["revenue"] else None)
    return conversion_value(campaign.product)


def _result(campaign: Campaign, summary: dict, districts: tuple[str, ...]) -> CampaignResult:
    target, control = summary["target"], summary["control"]
    # Who was contacted costs: what field teams reported of both groups (a random group is contacted too), else the
    # whole target list (an SMS or push campaign sends to all of it and reports nothing back).
    contacts = target["contacted"] + control["contacted"] or target["members"]
    cost = campaign.cost_per_contact
    return CampaignResult(
        campaign=campaign.id, name=campaign.name, month=campaign.start_date.strftime("%Y-%m"), purpose=campaign.purpose,
        product=campaign.product.code if campaign.product else None, channel=campaign.channel,
        control_kind=campaign.control_kind, model_targeted=model_targeted(campaign), districts=districts,
        target=Group(target["base"], target["successes"]), control=Group(control["base"], control["successes"]),
        contacts=contacts, cost_per_contact=float(cost) if cost is not None else settings.CAMPAIGN_COST_PER_CONTACT[campaign.channel],
        value_per_conversion=_value_per_conversion(campaign, target))


def campaign_performance(*, user, since=None, until=None, purpose: str | None = None) -> dict:
    """Every frozen campaign of the user's regions starting in [since, until] (the latest PERFORMANCE_MAX_CAMPAIGNS),
    each evaluated in the user's districts as its report is; with the pooled tables and the trend."""
    campaigns = campaigns_of(user).exclude(status=Campaign.Status.DRAFT).filter(snapshot__isnull=False)
    if since:
        campaigns = campaigns.filter(start_date__gte=since)
    if until:
        campaigns = campaigns.filter(start_date__lte=until)
    if purpose:
        campaigns = campaigns.filter(purpose=purpose)
    total = campaigns.count()
    chosen = list(campaigns.order_by("-start_date", "-id")[:settings.PERFORMANCE_MAX_CAMPAIGNS])
    results, by_district = [], []
    for campaign in chosen:
        if not targets_path(campaign).exists():
            continue
        evaluation = campaign_evaluation(campaign=campaign, user=user)
        districts = tuple(d["region"] for d in evaluation["by_district"])
        results.append(_result(campaign, evaluation["overall"], districts))
        by_district += [_result(campaign, d, (d["region"],)) for d in evaluation["by_district"]]
    results.sort(key=lambda r: (r.month, r.campaign))
    names = dict(Region.objects.filter(code__in={r.districts[0] for r in by_district}).values_list("code", "name"))
    products = dict(Product.objects.values_list("code", "name"))
    return {
        "campaigns": [performance.row(r) for r in results], "total_campaigns": total, "shown": len(chosen),
        "limit": settings.PERFORMANCE_MAX_CAMPAIGNS,
        "by_month": performance.pooled(results, lambda r: r.month),
        "by_product": [{**row, "name": products.get(row["key"], row["key"])}
                       for row in performance.pooled(results, lambda r: r.product)],
        "by_channel": performance.pooled(results, lambda r: r.channel),
        "by_district": [{**row, "name": names.get(row["key"], row["key"])}
                        for row in performance.pooled(by_district, lambda r: r.districts[0])],
        "by_targeting": performance.pooled(results, lambda r: "model_targeted" if r.model_targeted else "untargeted"),
        "trend": performance.trend(results),
        "settings": {"cost_per_contact": settings.CAMPAIGN_COST_PER_CONTACT, "value_months": settings.CAMPAIGN_VALUE_MONTHS},
    }


# --- adopter quality (发展客户质量) -------------------------------------------------------------------------

QUALITY_DAYS = (30, 60, 90)


def adopter_quality(*, campaign: Campaign, user) -> dict:
    """A sale campaign's converters in the user's districts, 30, 60 and 90 days after converting, target against
    control: still holding the product, gone (closed or ported out), and their spend (ARPU) then against the frozen
    snapshot's. A converter took the product up during the campaign (a subscription starting in it; against a random
    group, also one reported converted, dated by the contact, who may never have subscribed). A checkpoint counts only
    converters it has data for: holding and leaving up to the latest published snapshot's date, spend in the first
    published snapshot on or after it."""
    if campaign.purpose != Campaign.Purpose.SALE or campaign.snapshot is None:
        return {"horizons": [], "data_until": None}
    latest = Snapshot.objects.filter(is_current=True).values_list("as_of_date", flat=True).first()
    subscriptions = store.current_sql("subscriptions")
    if latest is None or not subscriptions:
        return {"horizons": [], "data_until": None}
    contacts = store.current_sql("contact_results")
    reported = (f"UNION ALL SELECT subscriber_id, min(contacted_at)::DATE FROM {contacts} WHERE campaign = $campaign "
                f"AND outcome = 'converted' GROUP BY subscriber_id" if contacts else "")
    later = list(Snapshot.objects.filter(as_of_date__gt=campaign.start_date).order_by("as_of_date")
                 .values_list("run_id", "as_of_date"))
    spends = " UNION ALL ".join(
        f"SELECT subscriber_id, arpu_30d, DATE '{as_of}' AS as_of FROM read_parquet({store.files_sql(files)})"
        for run_id, as_of in later if (files := stage_files(run_id, "features"))) or \
        f"SELECT * FROM {empty_relation(subscriber_id='BIGINT', arpu_30d='DOUBLE', as_of='DATE')}"
    before = stage_sql(campaign.snapshot.run_id, "features")
    con = store.reader()
    try:
        rows = con.execute(f"""
            WITH listed AS (SELECT subscriber_id, "group" FROM {target_list_sql(campaign)}
                            WHERE region_code IN (SELECT unnest($districts::VARCHAR[]))),
                 converted AS (SELECT subscriber_id, min(day) AS day FROM (
                                   SELECT subscriber_id, start_date AS day FROM {subscriptions}
                                   WHERE product_code = $product AND start_date BETWEEN $start AND $end {reported})
                               WHERE subscriber_id IN (SELECT subscriber_id FROM listed) GROUP BY subscriber_id),
                 checkpoints AS (SELECT c.subscriber_id, l."group", c.day, h.days, c.day + h.days::INTEGER AS at
                                 FROM converted c JOIN listed l USING (subscriber_id)
                                 CROSS JOIN (SELECT unnest($horizons::INTEGER[]) AS days) h),
                 holding AS (SELECT k.subscriber_id, k.days, bool_or(s.start_date <= k.at
                                    AND (s.end_date IS NULL OR s.end_date > k.at)) AS holds
                             FROM checkpoints k LEFT JOIN {subscriptions} s
                               ON s.subscriber_id = k.subscriber_id AND s.product_code = $product
                             GROUP BY ALL),
                 spend AS (SELECT k.subscriber_id, k.days, arg_min(p.arpu_30d, p.as_of) AS arpu
                           FROM checkpoints k JOIN ({spends}) p ON p.subscriber_id = k.subscriber_id AND p.as_of >= k.at
                           GROUP BY ALL)
            SELECT k.days, k."group", count(*) AS converters,
                   count(*) FILTER (WHERE k.at <= $latest) AS evaluable,
                   count(*) FILTER (WHERE k.at <= $latest AND coalesce(h.holds, false)) AS holding,
                   count(*) FILTER (WHERE k.at <= $latest AND m.status IN ('closed', 'ported_out')
                                      AND m.status_date <= k.at) AS churned,
                   count(p.arpu) AS with_spend, avg(b.arpu_30d) FILTER (WHERE p.arpu IS NOT NULL) AS spend_before,
                   avg(p.arpu) AS spend_after
            FROM checkpoints k LEFT JOIN holding h USING (subscriber_id, days) LEFT JOIN spend p USING (subscriber_id, days)
            LEFT JOIN {before} b USING (subscriber_id)
            LEFT JOIN {store.current_sql('subscribers')} m USING (subscriber_id)
            GROUP BY ALL ORDER BY ALL""", {
            "districts": campaign_districts(campaign, user), "product": campaign.product.code,
            "start": campaign.start_date, "end": campaign.end_date, "latest": latest, "horizons": list(QUALITY_DAYS),
            **({"campaign": str(campaign.id)} if contacts else {})}).fetchall()
    finally:
        con.close()
    found = {(days, group): dict(zip(("converters", "evaluable", "holding", "churned", "with_spend", "spend_before",
                                      "spend_after"), values)) for days, group, *values in rows}
    empty = dict.fromkeys(("converters", "evaluable", "holding", "churned", "with_spend"), 0) | {
        "spend_before": None, "spend_after": None}

    def shown(counts: dict) -> dict:
        evaluable = counts["evaluable"]
        change = (counts["spend_after"] - counts["spend_before"]
                  if counts["spend_after"] is not None and counts["spend_before"] is not None else None)
        return {**counts, "holding_share": counts["holding"] / evaluable if evaluable else None,
                "churned_share": counts["churned"] / evaluable if evaluable else None, "spend_change": change}

    return {"data_until": str(latest), "horizons": [
        {"days": days, **{group: shown(found.get((days, group), empty)) for group in ("target", "control")}}
        for days in QUALITY_DAYS]}
