"""Pages of the tagging app: the terminal snapshot library for sales staff."""

from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import render

from .models import Snapshot
from .terminal_selectors import UNREGISTERED, change_cycle_distribution, switching_matrix, terminal_mix

TOP_MODELS = 20


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
        tallest = max((b["subscribers"] for b in cycle["bins"]), default=0)
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
            # A bar chart drawn as inline SVG: no chart library to ship, nothing fetched at run time.
            "cycle_bars": [{**b, "x": 100 * i, "height": h, "y": 172 - h}
                           for i, b in enumerate(cycle["bins"])
                           for h in [round(150 * b["subscribers"] / tallest) if tallest else 0]],
            "chart_width": 100 * len(cycle["bins"]),
        })
    return render(request, "terminals.html", context)
