"""Pages of the tagging app: audiences and tags for sales staff and analysts, the terminal snapshot library."""

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import get_object_or_404, render

from .charts import bar_chart
from .models import Product, Region, Snapshot, TagDefinition
from .selectors import tag_library, tag_overview
from .services.audiences import SnapshotBitmaps
from .terminal_selectors import UNREGISTERED, change_cycle_distribution, switching_matrix, terminal_mix

TOP_MODELS = 20
RECENT_SNAPSHOTS = 12
@login_required
@permission_required("tagging.view_tagdefinition", raise_exception=True)
def audiences(request):
    """Count any combination of tags in the user's districts as it is typed (the preview API does the
    counting): the tag library to pick from, grouped by category with each tag's count."""
    snapshot = Snapshot.objects.current()
    products = dict(Product.objects.values_list("code", "name"))
    return render(request, "audiences.html", {
        "library": tag_library(user=request.user),
        "scores": [{"code": code, "product": products.get(code.removeprefix("propensity_"), code)}
                   for code in sorted(SnapshotBitmaps(snapshot, request.user).score_codes if snapshot else [])],
        "snapshots": Snapshot.objects.filter(tags__isnull=False).distinct()[:RECENT_SNAPSHOTS],
        "districts": Region.objects.visible_to(request.user).districts().order_by("code"),
        "expression": request.GET.get("expression", ""),
        "min_count": settings.AREA_MIN_COUNT,
    })


@login_required
@permission_required("tagging.view_tagdefinition", raise_exception=True)
def tag_page(request, code: str):
    """One tag in the user's districts: what decides it, its count per district, over the last snapshots,
    and who entered and left it."""
    tag = get_object_or_404(TagDefinition, code=code)
    overview = tag_overview(code=code, user=request.user)
    return render(request, "tag_page.html", {
        "tag": tag, **overview, "chart": bar_chart(overview["history"], label="as_of_date", value="count", step=90),
    })


@login_required
@permission_required("tagging.view_terminalshare", raise_exception=True)
def terminals(request):
    """The terminal mix, the brand switching matrix and the change-cycle chart of the user's districts."""
    snapshot = Snapshot.objects.current()
    context = {"snapshot": snapshot, "unregistered": UNREGISTERED}
    if snapshot:
        switching = switching_matrix(user=request.user, snapshot=snapshot)
        largest = max((n for row in switching["matrix"] for n in row), default=0)
        cycle = change_cycle_distribution(user=request.user, snapshot=snapshot)
        context.update({
            "brands": terminal_mix(user=request.user, snapshot=snapshot, by="brand"),
            "networks": terminal_mix(user=request.user, snapshot=snapshot, by="network"),
            "tiers": terminal_mix(user=request.user, snapshot=snapshot, by="tier"),
            "models": terminal_mix(user=request.user, snapshot=snapshot, by="model")["rows"][:TOP_MODELS],
            "switching": switching,
            # Cell shading: the share of the largest flow, for a heat-map look without a chart library.
            "switch_rows": [
                {"brand": brand, "cells": [{"n": n, "heat": round(n / largest, 2) if largest else 0} for n in row],
                 "summary": summary}
                for brand, row, summary in zip(switching["brands"], switching["matrix"], switching["per_brand"])
            ],
            "cycle": cycle,
            "cycle_chart": bar_chart(cycle["bins"], label="label", value="subscribers"),
        })
    return render(request, "terminals.html", context)
