"""Freezing a campaign: audience in the current snapshot, exclusions by reason, a seeded control group,
reasons per target; refusals that change nothing."""

from datetime import date

import duckdb
import h3
import pytest

from campaigns.models import Campaign
from campaigns.services.campaigns import CampaignRefused, freeze_campaign, targets_path
from tagging.models import Product, Region, StaffProfile
from tagging.stages import snapshot_dir

from .factories import staff_user

pytestmark = pytest.mark.django_db(transaction=True)  # the run's tasks are sent when its transaction commits


@pytest.fixture
def city(published_city):
    chancheng = Region.objects.get(code="440604")
    return {"run": published_city, "region": chancheng, "manager": staff_user(StaffProfile.Role.ADMIN, chancheng, username="cm")}


def draft(city, audience: str, **fields) -> Campaign:
    campaign = Campaign.objects.create(**{
        "name": "5G升级", "product": Product.objects.get(code="5g_plan"), "audience": audience,
        "channel": Campaign.Channel.OUTBOUND_CALL, "start_date": date(2026, 11, 1), "end_date": date(2026, 11, 30),
        "owner": city["manager"], **fields})
    campaign.regions.set([city["region"]])
    return campaign


def frozen_rows(campaign: Campaign, run) -> str:
    return (f"(SELECT t.*, f.marketing_opt_out, f.status, f.has_5g_plan FROM read_parquet('{targets_path(campaign)}') t "
            f"JOIN (SELECT subscriber_id, marketing_opt_out, status, has_5g_plan FROM "
            f"read_parquet('{snapshot_dir(run.id)}/features/*.parquet')) f USING (subscriber_id))")


def test_freezing_takes_out_opted_out_and_inactive_and_holds_out_a_seeded_control_group(city):
    campaign = freeze_campaign(campaign=draft(city, 'five_g_handset_no_plan and area("禅城区")'), user=city["manager"], seed=42)
    counts = campaign.counts
    assert campaign.status == Campaign.Status.FROZEN and campaign.seed == 42 and campaign.snapshot.run_id == city["run"].id
    assert counts["audience"] == counts["eligible"] + sum(counts["excluded"].values())
    assert set(counts["excluded"]) == {"opted_out", "not_active", "holds_product", "do_not_disturb", "contact_limit"}
    assert counts["excluded"]["holds_product"] == 0  # the audience is 5G handsets without a 5G plan
    assert counts["eligible"] > 20 and counts["control"] == round(counts["eligible"] * 0.1)
    assert counts["excluded"]["opted_out"] > 0  # the small city has opted-out 5G-handset owners in Chancheng
    assert counts["targets"] + counts["control"] == counts["eligible"]
    assert set(campaign.tag_versions) == {"five_g_handset_no_plan"}
    con = duckdb.connect()
    rows = frozen_rows(campaign, city["run"])
    total, control, opted, inactive, elsewhere, unexplained = con.sql(f"""
        SELECT count(*), count(*) FILTER (WHERE "group" = 'control'), count(*) FILTER (WHERE marketing_opt_out),
               count(*) FILTER (WHERE status <> 'active'), count(*) FILTER (WHERE region_code <> '440604' OR has_5g_plan),
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
            "channel": "outbound_call", "start_date": "2026-11-01", "end_date": "2026-11-30", "control_share": "0.1",
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
        ({"control_share": "0.9"}, "control_share", ""),
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


def test_field_teams_export_their_targets_with_full_numbers_and_every_export_is_logged(city, settings):
    import hashlib
    import json

    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from campaigns.models import ExportLog
    from campaigns.services.exports import neutralised
    from microarea.models import MicroArea

    campaign = freeze_campaign(campaign=draft(city, "five_g_handset_no_plan or phone_enthusiast"), user=city["manager"], seed=1)
    field_user = staff_user(StaffProfile.Role.FIELD, city["region"], username="cc_field")
    field = APIClient()
    field.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=field_user).key}")
    response = field.get(f"/api/v1/campaigns/{campaign.id}/targets/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content)
    lines = body.decode().splitlines()
    assert lines[0] == "subscriber_id,msisdn,region_code,reasons"
    rows = [line.split(",", 3) for line in lines[1:]]
    control = {r[0] for r in duckdb.connect().sql(
        f"SELECT subscriber_id::VARCHAR FROM read_parquet('{targets_path(campaign)}') WHERE \"group\" = 'control'").fetchall()}
    assert len(rows) == campaign.counts["targets"] and not control & {r[0] for r in rows}
    assert all(len(r[1]) == 11 and r[1].isdigit() and r[2] == "440604" for r in rows)
    log = ExportLog.objects.get(user=field_user)
    assert (log.rows, log.completed, log.full_msisdn, log.sha256) == (len(rows), True, True, hashlib.sha256(body).hexdigest())
    with pytest.raises(ValueError, match="append-only"):
        log.delete()
    # Sales staff get masked numbers, in JSON too; an area narrows the list to its residents.
    sales = APIClient()
    sales.force_authenticate(staff_user(StaffProfile.Role.SALES, city["region"], username="cc_sales2"))
    masked = json.loads(b"".join(sales.get(f"/api/v1/campaigns/{campaign.id}/targets/?format=json").streaming_content))
    assert len(masked["rows"]) == len(rows) and all("****" in r[1] for r in masked["rows"])
    district_area = MicroArea.objects.get(region=city["region"], kind="district")
    in_area = b"".join(sales.get(f"/api/v1/campaigns/{campaign.id}/targets/?area={district_area.id}").streaming_content)
    assert 0 < len(in_area.decode().splitlines()) - 1 <= len(rows)
    # Refusals, each changing nothing: another district's area, a draft, a bad format, no token, over the quota.
    other_area = MicroArea.objects.exclude(region=city["region"]).first()
    logged = ExportLog.objects.count()
    assert sales.get(f"/api/v1/campaigns/{campaign.id}/targets/?area={other_area.id}").status_code == 404
    assert sales.get(f"/api/v1/campaigns/{draft(city, 'high_value').id}/targets/").status_code == 400
    assert sales.get(f"/api/v1/campaigns/{campaign.id}/targets/?format=xlsx").status_code == 400
    assert APIClient().get(f"/api/v1/campaigns/{campaign.id}/targets/").status_code == 401
    bad_token = APIClient()
    bad_token.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert bad_token.get(f"/api/v1/campaigns/{campaign.id}/targets/").status_code == 401
    settings.EXPORT_ROWS_PER_DAY = len(rows) + 1
    over = field.get(f"/api/v1/campaigns/{campaign.id}/targets/")
    assert over.status_code == 429 and "export quota" in over.json()["detail"]
    assert ExportLog.objects.count() == logged
    assert neutralised("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")" and neutralised("+86") == "'+86" and neutralised(5) == 5


def test_the_evaluation_compares_target_and_control_by_product_uptake_with_contacts_beside(city, tmp_path):
    from rest_framework.test import APIClient

    from tagging.lake import store
    from tagging.models import IngestBatch
    from tagging.services.ingest import ingest_file

    campaign = freeze_campaign(campaign=draft(city, "five_g_handset_no_plan or phone_enthusiast"), user=city["manager"], seed=3)
    frozen = duckdb.connect().sql(
        f"SELECT t.subscriber_id, t.\"group\", s.msisdn::VARCHAR FROM read_parquet('{targets_path(campaign)}') t "
        f"JOIN {store.current_sql('subscribers')} s USING (subscriber_id) ORDER BY 1").fetchall()
    targets = [m for _, g, m in frozen if g == "target"]
    control = [m for _, g, m in frozen if g == "control"]
    # Six targets and one control subscriber take the 5G plan during the campaign; two targets were contacted.
    takers = targets[:6] + control[:1]
    (tmp_path / "subs.csv").write_text("msisdn,product_code,start_date,end_date\n" +
                                       "".join(f"{m},5g_plan,2026-11-1{i},\n" for i, m in enumerate(takers)))
    assert ingest_file(dataset="subscriptions", path=tmp_path / "subs.csv").status == IngestBatch.Status.ACCEPTED
    (tmp_path / "contacts.csv").write_text(
        "campaign,msisdn,contacted_at,channel,outcome\n"
        f"{campaign.id},{targets[0]},2026-11-05T10:00:00+08:00,outbound_call,converted\n"
        f"{campaign.id},{targets[1]},2026-11-05T11:00:00+08:00,outbound_call,refused\n")
    assert ingest_file(dataset="contact_results", path=tmp_path / "contacts.csv").status == IngestBatch.Status.ACCEPTED
    (tmp_path / "bad.csv").write_text("campaign,msisdn,contacted_at,channel,outcome\n"
                                      f"99999,{targets[2]},2026-11-05T10:00:00+08:00,outbound_call,converted\n")
    refused = ingest_file(dataset="contact_results", path=tmp_path / "bad.csv")
    assert refused.status == IngestBatch.Status.REJECTED and "unknown campaign" in str(refused.errors)
    # A file naming a holdout member, or someone not on the list at all, is refused whole, naming the lines.
    stranger = duckdb.connect().sql(
        f"SELECT msisdn::VARCHAR FROM {store.current_sql('subscribers')} WHERE subscriber_id NOT IN "
        f"(SELECT subscriber_id FROM read_parquet('{targets_path(campaign)}')) LIMIT 1").fetchall()[0][0]
    (tmp_path / "strangers.csv").write_text(
        "campaign,msisdn,contacted_at,channel,outcome\n"
        f"{campaign.id},{targets[3]},2026-11-06T10:00:00+08:00,outbound_call,accepted\n"
        f"{campaign.id},{control[1]},2026-11-06T10:00:00+08:00,outbound_call,converted\n"
        f"{campaign.id},{stranger},2026-11-06T10:00:00+08:00,outbound_call,converted\n")
    strangers = ingest_file(dataset="contact_results", path=tmp_path / "strangers.csv")
    assert strangers.status == IngestBatch.Status.REJECTED and strangers.rows_accepted == 0
    assert [(e["line"], e["column"]) for e in strangers.errors] == [(3, "msisdn"), (4, "msisdn")]
    assert all("not on the campaign's contact list" in e["reason"] for e in strangers.errors)

    api = APIClient()
    api.force_authenticate(city["manager"])
    result = api.get(f"/api/v1/campaigns/{campaign.id}/evaluation/").json()
    took = duckdb.connect().sql(
        f"SELECT count(DISTINCT s.msisdn) FROM {store.current_sql('subscriptions')} p JOIN {store.current_sql('subscribers')} s "
        f"USING (subscriber_id) WHERE p.product_code = '5g_plan' AND p.start_date BETWEEN DATE '2026-11-01' AND DATE '2026-11-30'").fetchall()[0][0]
    overall = result["overall"]
    assert overall["target"]["members"] == len(targets) and overall["control"]["members"] == len(control)
    assert overall["target"]["converted"] >= 6 and overall["control"]["converted"] >= 1
    assert overall["target"]["converted"] + overall["control"]["converted"] <= took
    assert (overall["target"]["contacted"], overall["target"]["reported_converted"]) == (2, 1)
    assert overall["target_rate"] == pytest.approx(overall["target"]["converted"] / len(targets))
    assert overall["lift"] == pytest.approx(overall["target_rate"] / overall["control_rate"])
    assert overall["p_value"] is not None and overall["uplift_low"] < overall["uplift"] < overall["uplift_high"]
    assert [d["region"] for d in result["by_district"]] == ["440604"]
    assert api.get(f"/api/v1/campaigns/{draft(city, 'high_value').id}/evaluation/").status_code == 400
    # By micro-area: its residents in the frozen snapshot only; the district's own area is everyone with a home.
    from microarea.models import MicroArea

    area = MicroArea.objects.get(region=city["region"], kind="district")
    in_area = api.get(f"/api/v1/campaigns/{campaign.id}/evaluation/?area={area.id}").json()
    homes = duckdb.connect().sql(
        f"SELECT count(*) FROM read_parquet('{targets_path(campaign)}') t JOIN read_parquet('{snapshot_dir(city['run'].id)}/location/*.parquet') l "
        f"USING (subscriber_id) WHERE t.\"group\" = 'target' AND l.home_h3 IN (SELECT unnest($h::UBIGINT[]))",
        params={"h": area.hex_array().tolist()}).fetchall()[0][0]
    assert in_area["area"]["id"] == area.id and in_area["overall"]["target"]["members"] == homes
    assert 0 < homes <= len(targets)
    other = MicroArea.objects.exclude(region=city["region"]).first()
    assert api.get(f"/api/v1/campaigns/{campaign.id}/evaluation/?area={other.id}").status_code == 404
    assert api.get(f"/api/v1/campaigns/{campaign.id}/evaluation/?area=x").status_code == 400


def test_the_contact_policy_leaves_out_the_do_not_disturb_list_and_the_often_contacted(city, tmp_path):
    from datetime import timedelta

    from django.utils import timezone
    from pyroaring import BitMap
    from rest_framework.test import APIClient

    from campaigns.models import ContactBlackout
    from tagging.lake import store
    from tagging.models import IngestBatch, TagDefinition
    from tagging.services.ingest import ingest_file
    from tagging.services.tags import save_tag_definition

    first = freeze_campaign(campaign=draft(city, "five_g_handset_no_plan"), user=city["manager"], seed=5)
    ids = [r[0] for r in duckdb.connect().sql(
        f"SELECT subscriber_id FROM read_parquet('{targets_path(first)}') WHERE \"group\" = 'target' ORDER BY 1 LIMIT 4").fetchall()]
    save_tag_definition(tag=TagDefinition(code="do_not_disturb", name="免打扰", name_en="Do not disturb", category="basic",
                                          kind=TagDefinition.Kind.IMPORTED), members=BitMap(ids[:2]), note="complaints")
    msisdn = duckdb.connect().sql(f"SELECT msisdn::VARCHAR FROM {store.current_sql('subscribers')} "
                                  f"WHERE subscriber_id = {ids[2]}").fetchall()[0][0]
    lately = [timezone.localtime() - timedelta(days=d) for d in (1, 3, 5, 7)]
    (tmp_path / "contacts.csv").write_text("campaign,msisdn,contacted_at,channel,outcome\n" + "".join(
        f"{first.id},{msisdn},{at.isoformat(timespec='seconds')},sms,no_answer\n" for at in lately))
    assert ingest_file(dataset="contact_results", path=tmp_path / "contacts.csv").status == IngestBatch.Status.ACCEPTED
    second = freeze_campaign(campaign=draft(city, "five_g_handset_no_plan"), user=city["manager"], seed=5)
    assert second.counts["excluded"]["do_not_disturb"] == 2 and second.counts["excluded"]["contact_limit"] == 1
    assert second.counts["eligible"] == first.counts["eligible"] - 3
    kept = {r[0] for r in duckdb.connect().sql(f"SELECT subscriber_id FROM read_parquet('{targets_path(second)}')").fetchall()}
    assert not kept & set(ids[:3]) and ids[3] in kept
    # No list leaves on a blackout day.
    ContactBlackout.objects.create(start_date=timezone.localdate(), end_date=timezone.localdate(), reason="国庆 network freeze")
    api = APIClient()
    api.force_authenticate(staff_user(StaffProfile.Role.FIELD, city["region"], username="cc_field2"))
    blocked = api.get(f"/api/v1/campaigns/{second.id}/targets/")
    assert blocked.status_code == 409 and "network freeze" in blocked.json()["detail"]


def test_field_teams_report_outcomes_for_their_targets_only_once(city):
    from rest_framework.test import APIClient

    from tagging.lake import store

    campaign = freeze_campaign(campaign=draft(city, "five_g_handset_no_plan or phone_enthusiast"), user=city["manager"], seed=9)
    members = duckdb.connect().sql(
        f"SELECT t.\"group\", s.msisdn::VARCHAR FROM read_parquet('{targets_path(campaign)}') t "
        f"JOIN {store.current_sql('subscribers')} s USING (subscriber_id) ORDER BY t.subscriber_id").fetchall()
    targets = [m for g, m in members if g == "target"]
    control = [m for g, m in members if g == "control"]
    api = APIClient()
    api.force_authenticate(staff_user(StaffProfile.Role.FIELD, city["region"], username="cc_field3"))
    url = f"/api/v1/campaigns/{campaign.id}/outcomes/"
    rows = [{"msisdn": targets[0], "contacted_at": "2026-11-02T10:00:00+08:00", "channel": "outbound_call", "outcome": "converted"},
            {"msisdn": targets[1], "contacted_at": "2026-11-02T10:05:00+08:00", "channel": "outbound_call", "outcome": "refused"}]
    first = api.post(url, {"rows": rows}, format="json")
    assert first.status_code == 201 and first.json()["rows"] == 2, first.content
    assert api.post(url, {"rows": rows}, format="json").status_code == 200  # the same report again: nothing changes
    duplicate = api.post(url, {"rows": [rows[0], {**rows[1], "msisdn": targets[2]}]}, format="json")
    assert duplicate.status_code == 400 and "already ingested" in str(duplicate.json()["errors"])
    for bad, words in [
        ([{**rows[0], "msisdn": control[0]}], "not one of your targets in this campaign"),
        ([{**rows[0], "msisdn": "13800000000"}], "not one of your targets in this campaign"),
        ([{**rows[0], "outcome": "maybe"}], "must be one of"),
        ([{"msisdn": targets[3], "channel": "sms", "outcome": "accepted"}], "missing"),
        ([], "no rows"),
    ]:
        response = api.post(url, {"rows": bad}, format="json")
        assert response.status_code == 400 and words in str(response.json()), (bad, response.content)
    assert api.post(url, {"rows": "x"}, format="json").status_code == 400
    evaluation = api.get(f"/api/v1/campaigns/{campaign.id}/evaluation/").json()["overall"]["target"]
    assert (evaluation["contacted"], evaluation["reported_converted"]) == (2, 1)
    subscriber = duckdb.connect().sql(f"SELECT subscriber_id FROM {store.current_sql('subscribers')} "
                                      f"WHERE msisdn::VARCHAR = '{targets[0]}'").fetchall()[0][0]
    profile = api.get(f"/api/v1/subscribers/{subscriber}/profile/").json()
    assert profile["contacts"] == [{"campaign": str(campaign.id), "contacted_at": "2026-11-02T10:00:00+08:00",
                                    "channel": "outbound_call", "outcome": "converted"}]


def test_the_campaign_pages_list_and_report_in_your_regions_only(city, client):
    campaign = freeze_campaign(campaign=draft(city, "five_g_handset_no_plan"), user=city["manager"], seed=2)
    drafted = draft(city, "phone_enthusiast", name="草稿活动")
    client.force_login(city["manager"])
    listing = client.get("/campaigns/").content.decode()
    assert "5G升级" in listing and "草稿活动" in listing and f"/campaigns/{campaign.id}/" in listing
    report = client.get(f"/campaigns/{campaign.id}/")
    page = report.content.decode()
    assert report.status_code == 200 and 'id="evaluation"' in page and "<svg" in page and "禅城区" in page
    assert f"{campaign.counts['targets']:,}" in page and "拒绝营销" in page
    assert "草稿" in client.get(f"/campaigns/{drafted.id}/").content.decode()
    from microarea.models import MicroArea

    district_area = MicroArea.objects.get(region=city["region"], kind="district")
    assert f'<option value="{district_area.id}" selected>' in client.get(f"/campaigns/{campaign.id}/?area={district_area.id}").content.decode()
    elsewhere = MicroArea.objects.exclude(region=city["region"]).first()
    assert client.get(f"/campaigns/{campaign.id}/?area={elsewhere.id}").status_code == 404
    client.force_login(staff_user(StaffProfile.Role.SALES, Region.objects.get(code="440606"), username="sd_sales"))
    assert client.get(f"/campaigns/{campaign.id}/").status_code == 404
    assert "5G升级" not in client.get("/campaigns/").content.decode()


def test_saved_audiences_are_reused_by_campaigns_in_their_regions(city):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(city["manager"])
    saved = api.post("/api/v1/saved-audiences/", {"name": "5G潜客", "expression": "five_g_handset_no_plan or five_g_potential",
                                                    "regions": ["440604"]}, format="json")
    assert saved.status_code == 201, saved.content
    body = {"name": "复用", "product": "5g_plan", "saved_audience": saved.json()["id"], "channel": "sms",
            "start_date": "2026-11-01", "end_date": "2026-11-30", "regions": ["440604"]}
    campaign = api.post("/api/v1/campaigns/", body, format="json")
    assert campaign.status_code == 201 and campaign.json()["audience"] == "five_g_handset_no_plan or five_g_potential"
    bad = api.post("/api/v1/saved-audiences/", {"name": "x", "expression": "five_g_potentail", "regions": ["440604"]}, format="json")
    assert bad.status_code == 400 and "did you mean five_g_potential" in str(bad.json()["expression"])
    other = APIClient()
    other.force_authenticate(staff_user(StaffProfile.Role.ADMIN, Region.objects.get(code="440606"), username="sd_cm2"))
    assert other.get("/api/v1/saved-audiences/").json()["count"] == 0
    refused = other.post("/api/v1/campaigns/", {**body, "regions": ["440606"]}, format="json")
    assert refused.status_code == 400 and "no saved audience" in str(refused.json()["saved_audience"])
    assert api.post("/api/v1/campaigns/", {**body, "saved_audience": None}, format="json").status_code == 400


@pytest.mark.parametrize("text", ["plain", 'area("禅城区")', "a,b", "line\nbreak", "=1+1", "+86138", "-2", "@x", "\tx", "'quoted'", ""])
def test_export_cells_are_formatted_in_sql_as_the_csv_module_and_the_masking_do(text):
    import csv
    import io

    from campaigns.services.exports import _csv_cell_sql, _masked_sql, _neutralised_sql, neutralised
    from tagging.privacy import mask_msisdn

    con = duckdb.connect()
    expected = io.StringIO()
    csv.writer(expected).writerow([1, neutralised(text)])  # a cell among others, as in the export's rows
    (cell,) = con.execute(f"SELECT {_csv_cell_sql(_neutralised_sql('$t'))}", {"t": text}).fetchone()
    assert "1," + cell == expected.getvalue().removesuffix("\r\n")
    for msisdn in ["13812345678", "1381234", "8613812345678"]:
        assert con.execute(f"SELECT {_masked_sql('$m')}", {"m": msisdn}).fetchone()[0] == mask_msisdn(msisdn)


def test_the_lifecycle_runs_frozen_running_closed_and_a_closed_campaign_exports_nothing(city):
    from rest_framework.test import APIClient

    from campaigns.models import ExportLog

    api = APIClient()
    api.force_authenticate(city["manager"])
    draft_campaign = draft(city, "high_value")
    refused = api.post(f"/api/v1/campaigns/{draft_campaign.id}/start/")
    assert refused.status_code == 400 and "only a campaign frozen can" in str(refused.json()["status"])
    assert api.post(f"/api/v1/campaigns/{draft_campaign.id}/close/").status_code == 400
    campaign = freeze_campaign(campaign=draft_campaign, user=city["manager"], seed=3)
    started = api.post(f"/api/v1/campaigns/{campaign.id}/start/")
    assert started.status_code == 200 and started.json()["status"] == "running"
    assert api.post(f"/api/v1/campaigns/{campaign.id}/start/").status_code == 400  # already running
    assert b"".join(api.get(f"/api/v1/campaigns/{campaign.id}/targets/").streaming_content).count(b"\n") > 1
    sales = APIClient()
    sales.force_authenticate(staff_user(StaffProfile.Role.SALES, city["region"], username="cc_sales_lc"))
    assert sales.post(f"/api/v1/campaigns/{campaign.id}/close/").status_code == 403
    closed = api.post(f"/api/v1/campaigns/{campaign.id}/close/")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    logged = ExportLog.objects.count()
    refused_export = api.get(f"/api/v1/campaigns/{campaign.id}/targets/")
    assert refused_export.status_code == 409 and "closed" in str(refused_export.json())
    assert ExportLog.objects.count() == logged
    # Results stay readable after the close.
    assert api.get(f"/api/v1/campaigns/{campaign.id}/evaluation/").status_code == 200


def test_a_random_control_group_is_drawn_from_everyone_eligible_and_exported_with_the_targets(city):
    campaign = freeze_campaign(campaign=draft(city, "young_subscriber", control_kind=Campaign.ControlKind.RANDOM,
                                              control_share="0.5"), user=city["manager"], seed=5)
    rows = duckdb.connect().sql(f"""
        SELECT t."group", count(*), count(*) FILTER (WHERE list_contains(t.reasons, 'young_subscriber'))
        FROM read_parquet('{targets_path(campaign)}') t GROUP BY 1""").fetchall()
    counts = {group: (n, matched) for group, n, matched in rows}
    # Targets are the audience less those drawn; the random group is mostly outside the audience.
    assert counts["target"][0] == counts["target"][1] == campaign.counts["targets"]
    assert counts["control"][0] == campaign.counts["control"] == round(campaign.counts["eligible"] * 0.5)
    assert counts["control"][1] < counts["control"][0] / 2
    # Nobody already holding the campaign's product is in either group.
    assert campaign.counts["excluded"]["holds_product"] > 0
    assert duckdb.connect().sql(f"SELECT count(*) FROM {frozen_rows(campaign, city['run'])} WHERE has_5g_plan").fetchall() == [(0,)]
    again = freeze_campaign(campaign=draft(city, "young_subscriber", control_kind=Campaign.ControlKind.RANDOM,
                                           control_share="0.5"), user=city["manager"], seed=5)
    same = "SELECT subscriber_id FROM read_parquet('{}') WHERE \"group\" = 'control' ORDER BY 1"
    con = duckdb.connect()
    assert con.execute(same.format(targets_path(campaign))).fetchall() == con.execute(same.format(targets_path(again))).fetchall()


def test_the_map_shows_where_a_campaigns_targets_live_in_your_districts_only(city, client, settings):
    from rest_framework.test import APIClient

    from microarea.models import MicroArea

    settings.AREA_MIN_COUNT = 1
    campaign = freeze_campaign(campaign=draft(city, "five_g_handset_no_plan or phone_enthusiast"), user=city["manager"], seed=3)
    sales_user = staff_user(StaffProfile.Role.SALES, city["region"], username="cc_map")
    sales = APIClient()
    sales.force_authenticate(sales_user)
    folder = snapshot_dir(city["run"].id)
    per_hex = dict(duckdb.connect().sql(f"""
        SELECT l.home_h3, count(*) FROM read_parquet('{targets_path(campaign)}') t
        JOIN read_parquet('{folder}/location/*.parquet') l USING (subscriber_id)
        WHERE t."group" = 'target' AND l.home_h3 IS NOT NULL GROUP BY 1""").fetchall())
    assert sum(per_hex.values()) > 20
    res9 = sales.get(f"/api/v1/hexes/?resolution=9&metric=campaign_targets&campaign={campaign.id}").json()
    shown = {h3.str_to_int(f["id"]): f["properties"]["value"] for f in res9["features"]}
    assert res9["campaign"] == campaign.id and {h: n for h, n in shown.items() if n} == per_hex
    # Coarser hexes sum the same targets; where they work is counted too, never more than the list.
    res7 = sales.get(f"/api/v1/hexes/?resolution=7&metric=campaign_targets&campaign={campaign.id}").json()
    assert sum(f["properties"]["value"] for f in res7["features"]) == sum(per_hex.values())
    work = sales.get(f"/api/v1/hexes/?resolution=8&basis=work&metric=campaign_targets&campaign={campaign.id}").json()
    assert 0 < sum(f["properties"]["value"] for f in work["features"]) <= campaign.counts["targets"]
    # A random control group is contacted like the targets, so the map counts it as the exports hold it.
    random = freeze_campaign(campaign=draft(city, "high_value", control_kind=Campaign.ControlKind.RANDOM, control_share="0.2"),
                             user=city["manager"], seed=4)
    listed = duckdb.connect().sql(f"""
        SELECT count(*) FILTER (WHERE t."group" = 'control'), count(*) FROM read_parquet('{targets_path(random)}') t
        JOIN read_parquet('{folder}/location/*.parquet') l USING (subscriber_id) WHERE l.home_h3 IS NOT NULL""").fetchall()[0]
    shown = sales.get(f"/api/v1/hexes/?resolution=7&metric=campaign_targets&campaign={random.id}").json()["features"]
    assert listed[0] > 0 and sum(f["properties"]["value"] for f in shown) == listed[1]
    # The district's panel counts its resident targets.
    area = MicroArea.objects.get(region=city["region"], kind="district")
    inside = set(area.hex_array().tolist())
    panel = sales.get(f"/api/v1/microareas/{area.id}/stats/?campaign={campaign.id}").json()["target_list"]
    assert panel["id"] == campaign.id and panel["targets"] == sum(n for h, n in per_hex.items() if h in inside)
    # Refused, naming the parameter: no campaign, an unknown one, a draft, another district's campaign.
    shunde = Region.objects.get(code="440606")
    elsewhere = draft(city, "high_value", name="顺德活动")
    elsewhere.regions.set([shunde])
    elsewhere = freeze_campaign(campaign=elsewhere, user=staff_user(StaffProfile.Role.ADMIN, shunde, username="sd_cm"), seed=1)
    for query in ("", "&campaign=999999", "&campaign=abc", f"&campaign={draft(city, 'high_value').id}",
                  f"&campaign={elsewhere.id}"):
        response = sales.get(f"/api/v1/hexes/?metric=campaign_targets{query}")
        assert response.status_code == 400 and "campaign" in response.json(), query
    assert sales.get(f"/api/v1/hexes/{h3.int_to_str(next(iter(per_hex)))}/stats/?campaign={elsewhere.id}").status_code == 400
    # The map page offers the metric with the user's frozen campaigns only.
    client.force_login(sales_user)
    page = client.get("/map/").content.decode()
    assert '"campaign_targets"' in page and f'<option value="{campaign.id}">' in page and "顺德活动" not in page
    assert "顺德活动" not in client.get(f"/map/?metric=campaign_targets&campaign={elsewhere.id}").content.decode()
    client.force_login(staff_user(StaffProfile.Role.SALES, Region.objects.get(code="440607"), username="ss_map"))
    assert '"campaign_targets"' not in client.get("/map/").content.decode()
