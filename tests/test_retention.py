"""Retention campaigns (维系挽留): they sell no product, their holdout is offered nothing, and they are measured by
churn in target against control. On the simulated city the offer's planted effect is recovered: the report's 95%
interval holds the reduction the offer really made to the targets' leaving (the same draws without the offer), and is
narrower than it. Bad campaign inputs are refused by field, nothing saved."""

from datetime import timedelta
from decimal import Decimal

import duckdb
import numpy as np
import pytest
from django.test import Client
from rest_framework.test import APIClient

from campaigns.models import Campaign
from campaigns.selectors import campaign_evaluation
from campaigns.services.campaigns import CampaignRefused, create_campaign, freeze_campaign, move_campaign, targets_path
from microarea.services.imports import import_micro_areas
from simulation.churn import RETENTION_REDUCTION
from simulation.responses import retention_revisions
from tagging.lake.store import read_sql
from tagging.models import IngestBatch, Product, Region, StaffProfile
from tagging.services.ingest import ingest_file
from tagging.services.snapshots import pinned_paths, start_snapshot_run
from tagging.services.tags import install_starting_catalogue

from .conftest import CHURN_CITY, WITHOUT_SIGNALLING, ingest_city
from .factories import staff_user

pytestmark = pytest.mark.django_db(transaction=True)

EVERYONE_ACTIVE = "value_tier_high or value_tier_mid or value_tier_low"


def test_a_retention_campaign_recovers_the_planted_reduction_of_churn(churn_city, run_to_end, tmp_path):
    ingest_city(churn_city, WITHOUT_SIGNALLING)
    import_micro_areas(churn_city / "districts.geojson")
    install_starting_catalogue()
    # Two weeks in, every active line of the city: half offered to stay, half held out; watched to the city's last day
    # (the churn window after the campaign ends).
    as_of = CHURN_CITY.start_date + timedelta(days=13)
    run = run_to_end(start_snapshot_run(as_of=as_of, window_days=14, partition_size=25_000), timeout=600)
    assert run.status == "succeeded", run.error
    admin = staff_user(StaffProfile.Role.ADMIN, *Region.objects.all(), username="retention_lead")
    start = as_of + timedelta(days=1)
    campaign = create_campaign(
        owner=admin, name="全量维系", product=None, purpose=Campaign.Purpose.RETENTION, offer="每月赠送30元话费, 连续6个月",
        audience=EVERYONE_ACTIVE, channel=Campaign.Channel.OUTBOUND_CALL, start_date=start,
        end_date=start + timedelta(days=15), regions=list(Region.objects.districts().values_list("code", flat=True)),
        control_share=Decimal("0.5"), control_kind=Campaign.ControlKind.HOLDOUT)
    campaign = freeze_campaign(campaign=campaign, user=admin, seed=3)
    move_campaign(campaign=campaign, step="start", user=admin)
    assert campaign.counts["excluded"].get("holds_product", 0) == 0  # it sells nothing, so nobody holds it
    targets = duckdb.connect().sql(f"""SELECT s.msisdn::VARCHAR FROM read_parquet('{targets_path(campaign)}') t
                             JOIN {read_sql("subscribers", pinned_paths(run.lake_batches)["subscribers"])} s USING (subscriber_id)
                             WHERE t."group" = 'target'""").fetchnumpy()
    msisdns = np.asarray(next(iter(targets.values())), dtype=str)
    # The city answers: the offered get the planted reduction from the start day, and the CRM sends the status changes.
    answered = retention_revisions(city=churn_city, msisdns=msisdns, offer_date=start, out=tmp_path / "subscribers.csv")
    batch = ingest_file(dataset="subscribers", path=tmp_path / "subscribers.csv")
    assert batch.status == IngestBatch.Status.ACCEPTED, (batch.message, batch.errors[:3])
    assert answered["changed"] > 0 and answered["leavers_with_offer"] < answered["leavers_without_offer"]
    true_reduction = 1 - answered["leavers_with_offer"] / answered["leavers_without_offer"]

    evaluation = campaign_evaluation(campaign=campaign, user=admin)
    overall = evaluation["overall"]
    assert evaluation["purpose"] == "retention" and evaluation["base"] == "members"
    assert overall["target"]["successes"] == answered["leavers_with_offer"]  # leavers in the target group, as lived
    print(f"retention: true reduction {true_reduction:.3f} (hazard {RETENTION_REDUCTION}), reported {overall['reduction']:.3f} "
          f"({overall['reduction_low']:.3f}-{overall['reduction_high']:.3f}); target {overall['target']['successes']} of "
          f"{overall['target']['base']}, control {overall['control']['successes']} of {overall['control']['base']}; "
          f"revenue kept {overall['revenue_kept']}")
    assert overall["reduction_low"] <= true_reduction <= overall["reduction_high"]
    assert overall["reduction_high"] - overall["reduction_low"] < true_reduction
    assert overall["revenue_kept"] > 0
    # The holdout's churn by churn-risk decile: this snapshot fitted no churn model (nothing two weeks back).
    assert not any(row["contacted"] for row in evaluation["gains"])

    page = Client()
    page.force_login(admin)
    html = page.get(f"/campaigns/{campaign.id}/").content.decode()
    assert 'id="churn-reduction"' in html and "每月赠送30元话费" in html
    api = APIClient()
    api.force_authenticate(admin)
    answer = api.get(f"/api/v1/campaigns/{campaign.id}/evaluation/").json()
    assert answer["overall"]["reduction"] == pytest.approx(overall["reduction"])


# --- bad input -------------------------------------------------------------------------------------------


@pytest.fixture
def manager(published_city):
    return staff_user(StaffProfile.Role.ADMIN, Region.objects.get(code="440604"), username="campaign_inputs")


@pytest.mark.parametrize("fields, field, message", [
    ({"purpose": "retention"}, "product", "sells no product"),
    ({"purpose": "sale", "product": None}, "product", "names the product"),
    ({"purpose": "retention", "product": None, "control_kind": "random"}, "control_kind", "holdout"),
    ({"purpose": "upsell"}, "purpose", "not a purpose"),
    ({"cost_per_contact": "-1"}, "cost_per_contact", "0 or more"),
    ({"cost_per_contact": "cheap"}, "cost_per_contact", "not an amount"),
    ({"value_per_conversion": "-20"}, "value_per_conversion", "0 or more"),
    ({"value_per_conversion": "NaN"}, "value_per_conversion", "0 or more"),
    ({"value_per_conversion": "Infinity"}, "value_per_conversion", "0 or more"),
    ({"value_per_conversion": "1e12"}, "value_per_conversion", "more than any"),
])
def test_bad_campaign_inputs_are_refused_by_field_and_nothing_is_saved(manager, fields, field, message):
    data = {"owner": manager, "name": "bad", "product": Product.objects.get(code="5g_plan"), "audience": "high_value",
            "channel": Campaign.Channel.SMS, "start_date": CHURN_CITY.end_date, "end_date": CHURN_CITY.end_date,
            "regions": ["440604"], "control_kind": Campaign.ControlKind.HOLDOUT, **fields}
    with pytest.raises(CampaignRefused) as refused:
        create_campaign(**data)
    assert refused.value.field == field and message in str(refused.value)
    assert not Campaign.objects.exists()


@pytest.mark.parametrize("body, field", [
    ({"purpose": "retention", "product": "5g_plan"}, "product"),
    ({"cost_per_contact": -0.5}, "cost_per_contact"),
    ({"value_per_conversion": "lots"}, "value_per_conversion"),
    ({"value_per_conversion": -3}, "value_per_conversion"),
    ({"regions": ["4406\x0004"]}, "regions"),  # PostgreSQL cannot compare a NUL: refused before any query
    ({"product": "5g\x00plan"}, "product"),
])
def test_the_api_refuses_them_naming_the_field(manager, body, field):
    api = APIClient()
    api.force_authenticate(manager)
    response = api.post("/api/v1/campaigns/", {
        "name": "bad", "product": "5g_plan", "audience": "high_value", "channel": "sms", "start_date": "2026-11-01",
        "end_date": "2026-11-30", "regions": ["440604"], **body}, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert not Campaign.objects.exists()


def test_a_retention_campaign_through_the_api_and_the_form(manager):
    api = APIClient()
    api.force_authenticate(manager)
    response = api.post("/api/v1/campaigns/", {
        "name": "维系", "purpose": "retention", "product": None, "offer": "流量包半价 3 个月", "audience": "high_value",
        "channel": "sms", "start_date": "2026-11-01", "end_date": "2026-11-30", "regions": ["440604"],
        "cost_per_contact": "0.04", "value_per_conversion": "600"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["purpose"] == "retention" and body["product"] is None and body["cost_per_contact"] == "0.04"
    page = Client()
    page.force_login(manager)
    response = page.post("/campaigns/new/", {
        "name": "维系2", "purpose": "retention", "product": Product.objects.get(code="5g_plan").pk, "audience": "high_value",
        "channel": "sms", "start_date": "2026-11-01", "end_date": "2026-11-30", "control_kind": "holdout",
        "control_share": "0.1", "regions": [Region.objects.get(code="440604").pk]})
    assert response.status_code == 200 and "sells no product" in response.content.decode()
    assert Campaign.objects.count() == 1
