"""Campaign pages: the list of your regions' campaigns, a new draft, each campaign's report and the steps
of its lifecycle (freeze, start, close)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from microarea.models import MicroArea
from tagging.charts import bar_chart, line_chart
from tagging.expressions import ExpressionError
from tagging.models import Product

from .forms import CampaignForm, PerformanceFilter
from .models import Campaign
from .selectors import (
    adopter_quality,
    campaign_evaluation,
    campaign_performance,
    campaigns_of,
    product_association,
    saved_audiences_of,
)
from .services.campaigns import (
    EXCLUSION_LABELS,
    CampaignRefused,
    create_campaign,
    freeze_campaign,
    move_campaign,
    next_steps,
)

CHART_HEIGHT = 160  # px of the tallest bar in the report's rate chart


@login_required
@permission_required("campaigns.view_campaign", raise_exception=True)
def campaign_list(request):
    campaigns = campaigns_of(request.user)
    return render(request, "campaigns/list.html", {"campaigns": campaigns})


@login_required
@permission_required("campaigns.add_campaign", raise_exception=True)
def campaign_new(request):
    """A draft campaign from an audience (typed, or saved; `?expression=` and `?saved=` fill them in)."""
    form = CampaignForm(request.POST or None, user=request.user, initial=_initial(request))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            campaign = create_campaign(
                owner=request.user, name=data["name"], product=data["product"], audience=data["audience"],
                channel=data["channel"], start_date=data["start_date"], end_date=data["end_date"],
                regions=[r.code for r in data["regions"]], control_share=data["control_share"],
                control_kind=data["control_kind"], saved_audience=data["saved_audience"], purpose=data["purpose"],
                offer=data["offer"], cost_per_contact=data["cost_per_contact"],
                value_per_conversion=data["value_per_conversion"])
        except CampaignRefused as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            messages.success(request, _("Draft saved: freeze it to make its target list."))
            return redirect("campaign-report", pk=campaign.pk)
    return render(request, "campaigns/new.html", {"form": form})


def _initial(request) -> dict:
    initial = {"audience": request.GET.get("expression", "")}
    saved = request.GET.get("saved", "")
    if saved.isdigit() and (audience := saved_audiences_of(request.user).filter(pk=int(saved)).first()):
        initial.update(saved_audience=audience, audience=initial["audience"] or audience.expression)
    return initial


STEP_LABELS = {"freeze": _("Freeze"), "start": _("Start"), "close": _("Close")}
STEP_DONE = {"freeze": _("Frozen: the target list and control group are made."),
             "start": _("Started: field teams may export and contact the list."),
             "close": _("Closed: no more exports or triggers; the results stay.")}


@login_required
@permission_required("campaigns.change_campaign", raise_exception=True)
@require_POST
def campaign_step(request, pk: int, step: str):
    """Freeze, start or close a campaign of the user's regions; a refused step changes nothing and says why."""
    campaign = get_object_or_404(campaigns_of(request.user), pk=pk)
    try:
        if step == "freeze":
            freeze_campaign(campaign=campaign, user=request.user)
        else:
            move_campaign(campaign=campaign, step=step, user=request.user)
    except CampaignRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, STEP_DONE[step])
    return redirect("campaign-report", pk=campaign.pk)


@login_required
@permission_required("campaigns.view_campaign", raise_exception=True)
def campaign_report(request, pk: int):
    """Target against control: the rates with their intervals as an inline SVG chart (nothing fetched at
    run time), lift, uplift and p-value, overall and per district; what was excluded and why."""
    campaign = get_object_or_404(campaigns_of(request.user), pk=pk)
    excluded = campaign.counts.get("excluded", {})
    context = {"campaign": campaign, "excluded": [(EXCLUSION_LABELS.get(code, code), n) for code, n in excluded.items()],
               "steps": [(step, STEP_LABELS[step]) for step in next_steps(campaign)],
               "retention": campaign.purpose == Campaign.Purpose.RETENTION}
    if campaign.status != Campaign.Status.DRAFT:
        areas = MicroArea.objects.visible_to(request.user).filter(region__code__in=campaign.counts.get("districts", []))
        wanted = request.GET.get("area", "")
        area = areas.filter(pk=int(wanted)).first() if wanted.isdigit() else None
        if wanted and area is None:
            raise Http404(f"no micro-area {wanted} of this campaign in your regions")
        context.update({"areas": areas.select_related("region").order_by("region__code", "name"), "area": area})
        evaluation = campaign_evaluation(campaign=campaign, user=request.user, area=area)
        overall = evaluation["overall"]
        rates = bar_chart([{"label": _("Target"), "rate": overall["target_rate"]},
                           {"label": _("Control"), "rate": overall["control_rate"]}],
                          label="label", value="rate", step=140, left=40, height=CHART_HEIGHT, headroom=1.15)
        context.update({"evaluation": evaluation, "overall": overall, "bars": rates["bars"], "chart_bottom": rates["bottom"],
                        **_gains_chart(evaluation["gains"]),
                        "gains_pairs": list(zip(evaluation["response_gains"], evaluation["gains"]))})
        if area is None:
            quality = adopter_quality(campaign=campaign, user=request.user)
            context.update({"quality": quality, "quality_rows": [
                {"days": row["days"], "groups": [(_("Target"), row["target"]), (_("Control"), row["control"])]}
                for row in quality["horizons"]]})
    return render(request, "campaigns/report.html", context)


def _gains_chart(gains: list[dict]) -> dict:
    """Bars of the conversion rate per propensity decile (10 first) and the cumulative gains curve, in px."""
    if not any(row["contacted"] for row in gains):
        return {"gains_bars": [], "gains_curve": ""}
    chart = bar_chart(gains, label="decile", value="rate", step=44, left=40, height=CHART_HEIGHT, headroom=1.15)
    bottom = chart["bottom"]
    points = [f"40,{bottom}"] + [f"{40 + 44 * (i + 1)},{bottom - round(CHART_HEIGHT * (row['cumulative_gain'] or 0))}"
                                 for i, row in enumerate(gains)]
    return {"gains_bars": chart["bars"], "gains_curve": " ".join(points)}


@login_required
@permission_required("campaigns.view_campaign", raise_exception=True)
def campaign_performance_page(request):
    """Every campaign of the user's regions against its control, by month, product, channel and district, with cost
    and return; the trend of model-targeted against untargeted success (inline SVG, nothing fetched)."""
    form = PerformanceFilter(request.GET or None)
    if form.is_bound and not form.is_valid():
        return render(request, "campaigns/performance.html", {"form": form}, status=400)
    data = form.cleaned_data if form.is_bound else {}
    performance = campaign_performance(user=request.user, since=data.get("since"), until=data.get("until"),
                                       purpose=data.get("purpose") or None)
    months = [row["month"] for row in performance["trend"]]

    def rates(kind: str, side: str) -> list[float | None]:
        return [(row[kind] or {}).get(f"{side}_rate") for row in performance["trend"]]

    chart = line_chart(months, {
        _("Model-targeted"): rates("model_targeted", "target"), _("Untargeted"): rates("untargeted", "target"),
        _("Model-targeted, control"): rates("model_targeted", "control"), _("Untargeted, control"): rates("untargeted", "control"),
    }) if months else None
    labels = {"purposes": {Campaign.Purpose.SALE: _("Sale"), Campaign.Purpose.RETENTION: _("Retention")},
              "channels": dict(Campaign.Channel.choices), "products": {row["key"]: row["name"] for row in performance["by_product"]},
              "targeting": {"model_targeted": _("Model-targeted"), "untargeted": _("Untargeted")}}
    return render(request, "campaigns/performance.html", {"form": form, "performance": performance, "chart": chart, **labels})


@login_required
@permission_required("campaigns.view_campaign", raise_exception=True)
def association_page(request):
    """关联营销: the LIFT matrix of the products over the current snapshot's active subscribers of the user's districts
    (holders of the row's product are `lift` times as likely to hold the column's), and per product the seed audience
    it suggests, to count on the audience page or to start a campaign with."""
    try:
        association = product_association(user=request.user)
    except ExpressionError as exc:  # no snapshot yet
        return render(request, "campaigns/association.html", {"refused": str(exc)})
    codes = [p["code"] for p in association["products"]]
    lifts = {(r["from"], r["to"]): r for r in association["rules"]}
    names = dict(Product.objects.filter(code__in=codes).values_list("code", "name"))
    matrix = [{"code": a, "name": names.get(a, a), "cells": [
        None if a == b else {**lifts[(a, b)], "strength": _lift_strength(lifts[(a, b)]["lift"])} for b in codes]}
        for a in codes]
    seeds = [{"code": c, "name": names.get(c, c), "expression": e} for c, e in association["seed_audiences"].items() if e]
    return render(request, "campaigns/association.html", {
        "association": association, "columns": [(c, names.get(c, c)) for c in codes], "matrix": matrix, "seeds": seeds,
        "min_lift": settings.ASSOCIATION_MIN_LIFT, "min_support": settings.ASSOCIATION_MIN_SUPPORT})


def _lift_strength(lift: float | None) -> int:
    """0-4: how strongly a cell is shaded (lift 1 or below: none; 2.5 or more: darkest)."""
    if lift is None or lift <= 1:
        return 0
    return min(4, 1 + int((lift - 1) / 0.5))
