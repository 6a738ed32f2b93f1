"""Campaign pages: the list of your regions' campaigns and each campaign's report."""

from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404
from django.shortcuts import get_object_or_404, render

from microarea.models import MicroArea

from .models import Campaign
from .services.campaigns import EXCLUSION_LABELS
from .services.results import campaign_evaluation

CHART_HEIGHT = 160  # px of the tallest bar in the report's rate chart


@login_required
@permission_required("campaigns.view_campaign", raise_exception=True)
def campaign_list(request):
    campaigns = Campaign.objects.visible_to(request.user).select_related("product", "owner")
    return render(request, "campaigns/list.html", {"campaigns": campaigns})


@login_required
@permission_required("campaigns.view_campaign", raise_exception=True)
def campaign_report(request, pk: int):
    """Target against control: the rates with their intervals as an inline SVG chart (nothing fetched at
    run time), lift, uplift and p-value, overall and per district; what was excluded and why."""
    campaign = get_object_or_404(Campaign.objects.visible_to(request.user).select_related("product", "snapshot"), pk=pk)
    excluded = campaign.counts.get("excluded", {})
    context = {"campaign": campaign, "excluded": [(EXCLUSION_LABELS.get(code, code), n) for code, n in excluded.items()]}
    if campaign.status != Campaign.Status.DRAFT:
        areas = MicroArea.objects.visible_to(request.user).filter(region__code__in=campaign.counts.get("districts", []))
        wanted = request.GET.get("area", "")
        area = areas.filter(pk=int(wanted)).first() if wanted.isdigit() else None
        if wanted and area is None:
            raise Http404(f"no micro-area {wanted} of this campaign in your regions")
        context.update({"areas": areas.select_related("region").order_by("region__code", "name"), "area": area})
        evaluation = campaign_evaluation(campaign=campaign, user=request.user, area=area)
        overall = evaluation["overall"]
        top = max([r for r in (overall["target_rate"], overall["control_rate"]) if r is not None], default=0) or 1
        bars = []
        for i, (label, rate) in enumerate([("目标组 Target", overall["target_rate"]), ("对照组 Control", overall["control_rate"])]):
            height = round(CHART_HEIGHT * (rate or 0) / top / 1.15)
            bars.append({"label": label, "rate": rate, "x": 40 + 140 * i, "height": height, "y": 20 + CHART_HEIGHT - height})
        context.update({"evaluation": evaluation, "overall": overall, "bars": bars, "chart_bottom": 20 + CHART_HEIGHT,
                        **_gains_chart(evaluation["gains"])})
    return render(request, "campaigns/report.html", context)


def _gains_chart(gains: list[dict]) -> dict:
    """Bars of the conversion rate per propensity decile (10 first) and the cumulative gains curve, in px."""
    if not any(row["contacted"] for row in gains):
        return {"gains_bars": [], "gains_curve": ""}
    top = max((row["rate"] or 0) for row in gains) or 1
    bars, points = [], ["40,%d" % (20 + CHART_HEIGHT)]
    for i, row in enumerate(gains):
        height = round(CHART_HEIGHT * (row["rate"] or 0) / top / 1.15)
        bars.append({**row, "x": 40 + 44 * i, "height": height, "y": 20 + CHART_HEIGHT - height})
        points.append("%d,%d" % (40 + 44 * (i + 1), 20 + CHART_HEIGHT - round(CHART_HEIGHT * (row["cumulative_gain"] or 0))))
    return {"gains_bars": bars, "gains_curve": " ".join(points)}
