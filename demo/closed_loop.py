"""The closed loop on the simulated city, end to end: a campaign manager builds a propensity-targeted
campaign with a random control group and freezes it; each district's field team exports its share of the
list through the export service (logged like any export), "calls" it, with answers drawn from the
simulator's planted response model, and reports the outcomes; the evaluation compares the groups."""

from __future__ import annotations

import csv
import io
from datetime import datetime, time, timedelta
from pathlib import Path

import numpy as np
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.selectors import campaign_evaluation
from campaigns.services.campaigns import create_campaign, freeze_campaign, move_campaign
from campaigns.services.exports import plan_export, stream
from campaigns.services.outcomes import record_outcomes
from microarea.selectors import visible_districts
from simulation.responses import draw_outcomes
from tagging.models import Product, Snapshot


def run_closed_loop(*, city: Path, manager, field_teams: list, product_code: str = "5g_plan", min_decile: int = 9,
                    control_share: float = 0.1, seed: int = 2026) -> tuple[Campaign, dict]:
    snapshot = Snapshot.objects.current()
    if snapshot is None:
        raise ValueError("no published snapshot: run the pipeline first")
    start = snapshot.as_of_date + timedelta(days=1)
    districts = sorted({code for user in field_teams for code in visible_districts(user)})
    campaign = create_campaign(
        owner=manager, name=f"{product_code} 倾向营销 closed loop (decile >= {min_decile})",
        product=Product.objects.get(code=product_code), audience=f"propensity_{product_code} >= {min_decile}",
        channel=Campaign.Channel.OUTBOUND_CALL, start_date=start, end_date=start + timedelta(days=13),
        regions=districts, control_share=control_share, control_kind=Campaign.ControlKind.RANDOM)
    campaign = freeze_campaign(campaign=campaign, user=manager, seed=seed)
    campaign = move_campaign(campaign=campaign, step="start", user=manager)
    for team, user in enumerate(field_teams):
        export = plan_export(campaign=campaign, user=user)
        listed = list(csv.DictReader(io.StringIO(b"".join(stream(export, "csv")).decode())))
        msisdns = np.array([row["msisdn"] for row in listed], dtype=str)
        outcomes = draw_outcomes(truth_dir=city / "truth", msisdns=msisdns, product=product_code, seed=seed + team)
        called = datetime.combine(start, time(10), timezone.get_current_timezone())
        record_outcomes(campaign=campaign, user=user, rows=[
            {"msisdn": m, "contacted_at": (called + timedelta(minutes=i % 5000)).isoformat(), "channel": campaign.channel,
             "outcome": o} for i, (m, o) in enumerate(zip(msisdns, outcomes))])
    return campaign, campaign_evaluation(campaign=campaign, user=manager)
