"""Freezing a campaign: audience in the current snapshot, exclusions by reason, a seeded control group,
reasons per target; refusals that change nothing."""

from datetime import date

import duckdb
import pytest

from campaigns.models import Campaign
from campaigns.services.campaigns import CampaignRefused, freeze_campaign, targets_path
from microarea.services.imports import import_micro_areas
from tagging.models import Product, Region, StaffProfile
from tagging.services.snapshots import start_snapshot_run
from tagging.services.tags import install_starting_catalogue
from tagging.stages import snapshot_dir

from .conftest import SMALL_CITY, ingest_city
from .factories import staff_user

pytestmark = pytest.mark.django_db(transaction=True)  # the run's tasks are sent when its transaction commits


@pytest.fixture
def city(small_city, run_to_end):
    ingest_city(small_city)
    import_micro_areas(small_city / "districts.geojson")
    install_starting_catalogue()
    run = run_to_end(start_snapshot_run(as_of=SMALL_CITY.end_date, window_days=SMALL_CITY.days, partition_size=600))
    chancheng = Region.objects.get(code="440604")
    return {"run": run, "region": chancheng, "manager": staff_user(StaffProfile.Role.ADMIN, chancheng, username="cm")}


def draft(city, audience: str, **fields) -> Campaign:
    campaign = Campaign.objects.create(**{
        "name": "5G升级", "product": Product.objects.get(code="5g_plan"), "audience": audience,
        "channel": Campaign.Channel.OUTBOUND_CALL, "start_date": date(2026, 11, 1), "end_date": date(2026, 11, 30),
        "owner": city["manager"], **fields})
    campaign.regions.set([city["region"]])
    return campaign


def frozen_rows(campaign: Campaign, run) -> str:
    return (f"(SELECT t.*, f.marketing_opt_out, f.status FROM read_parquet('{targets_path(campaign)}') t "
            f"JOIN (SELECT subscriber_id, marketing_opt_out, status FROM "
            f"read_parquet('{snapshot_dir(run.id)}/features/*.parquet')) f USING (subscriber_id))")


def test_freezing_takes_out_opted_out_and_inactive_and_holds_out_a_seeded_control_group(city):
    campaign = freeze_campaign(campaign=draft(city, 'five_g_handset_no_plan and area("禅城区")'), user=city["manager"], seed=42)
    counts = campaign.counts
    assert campaign.status == Campaign.Status.FROZEN and campaign.seed == 42 and campaign.snapshot.run_id == city["run"].id
    assert counts["audience"] == counts["eligible"] + counts["excluded"]["opted_out"] + counts["excluded"]["not_active"]
    assert counts["eligible"] > 20 and counts["control"] == round(counts["eligible"] * 0.1)
    assert counts["excluded"]["opted_out"] > 0  # the small city has opted-out 5G-handset owners in Chancheng
    assert counts["targets"] + counts["control"] == counts["eligible"]
    assert set(campaign.tag_versions) == {"five_g_handset_no_plan"}
    con = duckdb.connect()
    rows = frozen_rows(campaign, city["run"])
    total, control, opted, inactive, elsewhere, unexplained = con.sql(f"""
        SELECT count(*), count(*) FILTER (WHERE "group" = 'control'), count(*) FILTER (WHERE marketing_opt_out),
               count(*) FILTER (WHERE status <> 'active'), count(*) FILTER (WHERE region_code <> '440604'),
               count(*) FILTER (WHERE NOT list_contains(reasons, 'five_g_handset_no_plan')
                                   OR NOT list_contains(reasons, 'area("禅城区")'))
        FROM {rows}""").fetchall()[0]
    assert (total, control) == (counts["eligible"], counts["control"])
    assert opted == inactive == elsewhere == unexplained == 0
    # The same seed draws the same control group; another seed another one.
    again = freeze_campaign(campaign=draft(city, 'five_g_handset_no_plan and area("禅城区")'), user=city["manager"], seed=42)
    other = freeze_campaign(campaign=draft(city, 'five_g_handset_no_plan and area("禅城区")'), user=city["manager"], seed=7)
    groups = [con.sql(f"SELECT list(subscriber_id ORDER BY subscriber_id) FROM read_parquet('{targets_path(c)}') "
                      f"WHERE \"group\" = 'control'").fetchall()[0][0] for c in (campaign, again, other)]
    assert groups[0] == groups[1] != groups[2]


def test_reasons_name_the_terms_each_target_matched(city):
    campaign = freeze_campaign(campaign=draft(city, "five_g_handset_no_plan or phone_enthusiast"), user=city["manager"])
    reasons = duckdb.connect().sql(f"SELECT reasons FROM read_parquet('{targets_path(campaign)}')").fetchall()
    seen = {tuple(r[0]) for r in reasons}
    assert all(r and set(r) <= {"five_g_handset_no_plan", "phone_enthusiast"} for r in seen)
    assert len(seen) >= 2 and campaign.seed is not None


def test_what_cannot_be_frozen_is_refused_and_nothing_changes(city):
    frozen = freeze_campaign(campaign=draft(city, "five_g_handset_no_plan"), user=city["manager"])
    with pytest.raises(CampaignRefused) as refused:
        freeze_campaign(campaign=frozen, user=city["manager"])
    assert refused.value.field == "status"
    bad = draft(city, "five_g_handset_no_pln")
    with pytest.raises(CampaignRefused) as refused:
        freeze_campaign(campaign=bad, user=city["manager"])
    assert refused.value.field == "audience" and "did you mean five_g_handset_no_plan" in str(refused.value)
    elsewhere = draft(city, "five_g_handset_no_plan")
    elsewhere.regions.set([Region.objects.get(code="440606")])
    with pytest.raises(CampaignRefused) as refused:
        freeze_campaign(campaign=elsewhere, user=city["manager"])
    assert refused.value.field == "regions"
    for campaign in (bad, elsewhere):
        campaign.refresh_from_db()
        assert campaign.status == Campaign.Status.DRAFT and campaign.seed is None and not targets_path(campaign).exists()


def test_the_api_creates_drafts_checks_them_and_freezes(city):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(city["manager"])
    body = {"name": "5G升级-禅城", "product": "5g_plan", "audience": 'five_g_handset_no_plan and area("禅城区")',
            "channel": "outbound_call", "start_date": "2026-11-01", "end_date": "2026-11-30", "holdout_share": "0.1",
            "regions": ["440604"]}
    created = api.post("/api/v1/campaigns/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "draft" and created.json()["owner"] == "cm"
    frozen = api.post(f"/api/v1/campaigns/{created.json()['id']}/freeze/")
    assert frozen.status_code == 200 and frozen.json()["status"] == "frozen" and frozen.json()["counts"]["targets"] > 0
    again = api.post(f"/api/v1/campaigns/{created.json()['id']}/freeze/")
    assert again.status_code == 400 and "only a draft can be frozen" in str(again.json()["status"])
    for change, field, words in [
        ({"audience": "five_g_handset_no_pln"}, "audience", "did you mean"),
        ({"audience": 'area("顺德区")'}, "audience", "no micro-area of that name in your districts"),
        ({"regions": ["440606"]}, "regions", "not your districts: 440606"),
        ({"end_date": "2026-10-01"}, "end_date", "ends before it starts"),
        ({"holdout_share": "0.9"}, "holdout_share", ""),
        ({"channel": "pigeon"}, "channel", ""),
        ({"product": "nope"}, "product", ""),
    ]:
        response = api.post("/api/v1/campaigns/", {**body, **change}, format="json")
        assert response.status_code == 400 and field in response.json() and words in str(response.json()), (change, response.content)
    assert Campaign.objects.count() == 1
    # Other districts' staff do not see it; sales staff see it but may not freeze.
    shunde = APIClient()
    shunde.force_authenticate(staff_user(StaffProfile.Role.ADMIN, Region.objects.get(code="440606"), username="sd_cm"))
    assert shunde.get("/api/v1/campaigns/").json()["count"] == 0
    assert shunde.get(f"/api/v1/campaigns/{created.json()['id']}/").status_code == 404
    sales = APIClient()
    sales.force_authenticate(staff_user(StaffProfile.Role.SALES, city["region"], username="cc_sales"))
    assert sales.get("/api/v1/campaigns/").json()["count"] == 1
    draft_two = api.post("/api/v1/campaigns/", {**body, "name": "second"}, format="json").json()
    assert sales.post(f"/api/v1/campaigns/{draft_two['id']}/freeze/").status_code == 403
    assert sales.post("/api/v1/campaigns/", body, format="json").status_code == 403
