"""What a hostile insider tried against the demo (issue 17), each try as it was made: the same roles, the
same requests. Each is refused with a clear error, or answered without what it must not show."""

from datetime import date
from pathlib import Path

import duckdb
import pytest
from rest_framework.test import APIClient

from campaigns.models import Campaign, ExportQuota
from campaigns.services.campaigns import freeze_campaign, targets_path
from microarea.models import MicroArea
from tagging.lake import store
from tagging.models import Product, Region, StaffProfile
from tagging.stages import snapshot_dir

from .conftest import SERVICES, ingest_city
from .factories import staff_user

pytestmark = pytest.mark.django_db(transaction=True)  # the run's tasks are sent when its transaction commits


def api_as(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


@pytest.fixture
def demo(published_city):
    """The demo's accounts and its campaign 1: an analyst of all Foshan targets Chancheng and Shunde."""
    chancheng, shunde = Region.objects.get(code="440604"), Region.objects.get(code="440606")
    people = {
        "admin": staff_user(StaffProfile.Role.ADMIN, Region.objects.get(code="4406"), username="admin"),
        "sales_chancheng": staff_user(StaffProfile.Role.SALES, chancheng, username="sales_chancheng"),
        "field_chancheng": staff_user(StaffProfile.Role.FIELD, chancheng, username="field_chancheng"),
        "field_shunde": staff_user(StaffProfile.Role.FIELD, shunde, username="field_shunde"),
    }
    campaign = Campaign.objects.create(
        name="5G升级", product=Product.objects.get(code="5g_plan"), audience="five_g_handset_no_plan or phone_enthusiast",
        channel=Campaign.Channel.OUTBOUND_CALL, start_date=date(2026, 11, 1), end_date=date(2026, 11, 30),
        owner=people["admin"], control_kind=Campaign.ControlKind.RANDOM, control_share="0.2")
    campaign.regions.set([chancheng, shunde])
    campaign = freeze_campaign(campaign=campaign, user=people["admin"], seed=1)
    return {**people, "run": published_city, "campaign": campaign}


def targets_of(campaign: Campaign, region_code: str) -> list[str]:
    return [m for (m,) in duckdb.connect().sql(
        f"SELECT s.msisdn::VARCHAR FROM read_parquet('{targets_path(campaign)}') t JOIN {store.current_sql('subscribers')} s "
        f"USING (subscriber_id) WHERE t.region_code = '{region_code}' ORDER BY t.subscriber_id").fetchall()]


def outcome(msisdn: str) -> dict:
    return {"msisdn": msisdn, "contacted_at": "2026-11-02T10:00:00+08:00", "channel": "outbound_call", "outcome": "refused"}


def test_try_1_outcomes_are_no_oracle_for_masked_numbers(demo):
    campaign = demo["campaign"]
    url = f"/api/v1/campaigns/{campaign.id}/outcomes/"
    real = targets_of(campaign, "440604")[0]
    guesses = [f"134{n:04d}{real[-4:]}" for n in range(100)]
    guesses[37] = real  # the one real number among the guesses
    # Sales staff see masked numbers only and report no outcomes at all.
    refused = api_as(demo["sales_chancheng"]).post(url, {"rows": [outcome(m) for m in guesses]}, format="json")
    assert refused.status_code == 403
    # Shunde's field team gets one refusal per line for Chancheng's targets and for nobody's numbers alike.
    answer = api_as(demo["field_shunde"]).post(url, {"rows": [outcome(m) for m in guesses]}, format="json")
    assert answer.status_code == 400
    body = answer.json()
    assert [e["reason"] for e in body["errors"]] == [f"line {i}: not one of your targets in this campaign" for i in range(1, 101)]
    assert not any(m in answer.content.decode() for m in guesses)
    assert real[-4:] not in answer.content.decode()
    one_real = api_as(demo["field_shunde"]).post(url, {"rows": [outcome(real)]}, format="json")
    one_guess = api_as(demo["field_shunde"]).post(url, {"rows": [outcome(guesses[0])]}, format="json")
    assert one_real.status_code == one_guess.status_code == 400 and one_real.content == one_guess.content
    # Chancheng's own field team and the analyst running the campaign do report them.
    assert api_as(demo["field_chancheng"]).post(url, {"rows": [outcome(real)]}, format="json").status_code == 201
    shunde_target = targets_of(campaign, "440606")[0]
    assert api_as(demo["admin"]).post(url, {"rows": [outcome(shunde_target)]}, format="json").status_code == 201


@pytest.fixture
def network(small_city):
    """The city's regions and cells only, and the demo's sales user of Chancheng."""
    from microarea.services.coverage import cell_coverage

    ingest_city(small_city, ["regions", "cells"])
    cell_coverage()  # the footprints, made once per set of cells (by the first run, or here)
    return {"sales_chancheng": staff_user(StaffProfile.Role.SALES, Region.objects.get(code="440604"), username="sales_chancheng")}


@pytest.fixture
def nothing_expanded(monkeypatch):
    """Fails a test whose request lists a single hex of an area: a refusal must come from the size alone."""
    import microarea.services.micro_areas as micro_areas

    def expanded(*args, **kwargs):
        raise AssertionError("the area was expanded before its size was checked")

    monkeypatch.setattr(micro_areas.h3, "cell_to_children", expanded)
    monkeypatch.setattr(micro_areas.h3, "polygon_to_cells", expanded)


CONTINENT = {"type": "Polygon", "coordinates": [[[70, 15], [135, 15], [135, 53], [70, 53], [70, 15]]]}


def test_try_2_an_area_is_sized_before_it_is_expanded(network, nothing_expanded, settings):
    api = api_as(network["sales_chancheng"])
    one_hex = api.post("/api/v1/microareas/", {"name": "x", "region": "440604", "hexes": ["8041fffffffffff"]}, format="json")
    assert one_hex.status_code == 400
    assert one_hex.json() == {"hexes": ["item 1: '8041fffffffffff' is of resolution 0; the coarsest allowed is 5 "
                                        "(MICROAREA_COARSEST_RESOLUTION)"]}
    continent = api.post("/api/v1/microareas/", {"name": "x", "region": "440604", "geometry": CONTINENT}, format="json")
    assert continent.status_code == 400
    message = continent.json()["geometry"][0]
    assert "at most 200,000 (MICROAREA_MAX_HEXES)" in message and "about 227,274,091 resolution-9 hexes" in message
    # Coarse hexes that are each allowed but too many together: counted from their resolutions.
    res5 = ["85411c2bfffffff", "85411c2ffffffff", "85411c23fffffff"]
    settings.MICROAREA_MAX_HEXES = 5000
    many = api.post("/api/v1/microareas/", {"name": "x", "region": "440604", "hexes": res5}, format="json")
    assert many.status_code == 400 and "about 7,203 resolution-9 hexes; at most 5,000" in many.json()["hexes"][0]
    long_list = api.post("/api/v1/microareas/", {"name": "x", "region": "440604", "hexes": ["89411c2bfffffff"] * 5001},
                         format="json")
    assert long_list.status_code == 400 and "at most 5,000" in long_list.json()["hexes"][0]
    jagged = {"type": "Polygon", "coordinates": [[[113.1 + i * 1e-6, 23.0 + (i % 2) * 1e-3] for i in range(20_000)]
                                                  + [[113.1, 23.0]]]}
    vertices = api.post("/api/v1/microareas/", {"name": "x", "region": "440604", "geometry": jagged}, format="json")
    assert vertices.status_code == 400 and "20,001 vertices; at most 10,000" in vertices.json()["geometry"][0]
    assert not MicroArea.objects.exists()


def test_a_request_body_is_refused_before_it_is_read_when_too_large(network, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    api = api_as(network["sales_chancheng"])
    answer = api.post("/api/v1/microareas/", {"name": "x", "region": "440604", "hexes": ["89411c2bfffffff"] * 1000},
                      format="json")
    assert answer.status_code == 413 and "larger than 10,000 bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)" in answer.json()["detail"]
    assert not MicroArea.objects.exists()


def test_an_audience_names_a_bounded_number_of_places(published_city):
    from tagging.expressions import ExpressionError
    from tagging.services.audiences import preview_audience

    analyst = staff_user(StaffProfile.Role.ADMIN, Region.objects.get(code="4406"), username="analyst")
    ten = " or ".join(['area("禅城区")'] * 10)
    assert preview_audience(expression=ten, user=analyst)["count"] > 0
    with pytest.raises(ExpressionError) as refused:
        preview_audience(expression=ten + ' or hex("89411c2bfffffff")', user=analyst)
    assert "at most 10 areas, hexes and products" in str(refused.value) and refused.value.column == len(ten) + 5


def test_try_3_area_exports_leave_out_whom_the_contact_policy_bars_and_are_logged(demo, settings):
    import hashlib
    import json

    from pyroaring import BitMap

    from campaigns.models import ExportLog
    from tagging.models import TagDefinition
    from tagging.services.tags import save_tag_definition

    area = MicroArea.objects.get(region__code="440604", kind=MicroArea.Kind.DISTRICT)
    url = f"/api/v1/microareas/{area.id}/targets/?product=5g_plan&class=developed,demand,potential&format=json"
    field = api_as(demo["field_chancheng"])
    first = field.get(url)
    body = b"".join(first.streaming_content)
    rows = json.loads(body)["rows"]
    ids = [r[0] for r in rows]
    status = dict(duckdb.connect().execute(
        f"SELECT subscriber_id, marketing_opt_out OR status <> 'active' FROM {store.current_sql('subscribers')} "
        f"WHERE subscriber_id IN (SELECT unnest($ids::BIGINT[]))", {"ids": ids}).fetchall())
    barred_in_area = duckdb.connect().execute(
        f"SELECT count(*) FROM {store.current_sql('subscribers')} s "
        f"JOIN read_parquet('{snapshot_dir(demo['run'].id)}/location/*.parquet') l USING (subscriber_id) "
        f"WHERE s.region_code = '440604' AND (s.marketing_opt_out OR s.status <> 'active') "
        f"AND l.home_h3 IN (SELECT unnest($hexes::UBIGINT[]))", {"hexes": area.hex_array().tolist()}).fetchone()[0]
    assert first.status_code == 200 and len(rows) > 20 and barred_in_area > 0
    assert not any(status[i] for i in ids)  # nobody opted out, suspended or closed
    assert all(len(r[1]) == 11 and r[1].isdigit() for r in rows)  # field teams contact them: full numbers
    log = ExportLog.objects.get(user=demo["field_chancheng"])
    assert (log.kind, log.campaign, log.rows, log.completed, log.sha256) == ("area", None, len(rows), True,
                                                                             hashlib.sha256(body).hexdigest())
    assert list(log.regions.values_list("code", flat=True)) == ["440604"] and log.filters["area"]["id"] == area.id
    # The do-not-disturb list is left out as it is now.
    save_tag_definition(tag=TagDefinition(code="do_not_disturb", name="免打扰", name_en="Do not disturb", category="basic",
                                          kind=TagDefinition.Kind.IMPORTED), members=BitMap(ids[:3]), note="complaints")
    again = json.loads(b"".join(field.get(url).streaming_content))["rows"]
    assert [r[0] for r in again] == ids[3:]
    # Both exports count towards the daily quota, reserved before the first row: a third is refused whole.
    settings.EXPORT_ROWS_PER_DAY = 2 * len(rows)
    over = field.get(url)
    assert over.status_code == 429 and f"{2 * len(rows) - 3:,} exported today" in over.json()["detail"]
    # Sales staff export the same list masked; a hex export is the same list for one hex.
    settings.EXPORT_ROWS_PER_DAY = 10 ** 6
    masked = json.loads(b"".join(api_as(demo["sales_chancheng"]).get(url).streaming_content))["rows"]
    assert [r[0] for r in masked] == ids[3:] and all("****" in r[1] for r in masked)
    hex_cell = again[0][4]
    in_hex = json.loads(b"".join(field.get(f"/api/v1/hexes/{hex_cell}/targets/?product=5g_plan&class=developed,demand,potential"
                                           f"&format=json").streaming_content))["rows"]
    assert in_hex and {r[0] for r in in_hex} <= set(ids[3:]) and ExportLog.objects.filter(kind="hex").count() == 1


def test_parallel_exports_cannot_pass_the_quota_together(demo, settings):
    from campaigns.services.exports import ExportRefused, plan_export, stream

    campaign = demo["campaign"]
    user = demo["field_chancheng"]
    first = plan_export(campaign=campaign, user=user)
    settings.EXPORT_ROWS_PER_DAY = first.rows + first.rows // 2
    with pytest.raises(ExportRefused) as refused:  # the second, planned while the first has not sent a row
        plan_export(campaign=campaign, user=user)
    assert refused.value.status == 429
    b"".join(stream(first, "csv"))
    with pytest.raises(ExportRefused):
        plan_export(campaign=campaign, user=user)
    # A stream the client stopped reading gives back what it did not send.
    settings.EXPORT_ROWS_PER_DAY = 10 * first.rows
    started = stream(plan_export(campaign=campaign, user=user), "csv")
    next(started)
    started.close()
    assert ExportQuota.objects.get(user=user).rows == first.rows


@pytest.fixture
def no_worker(monkeypatch):
    """Partitions are sent to no worker: a run stays running until a test computes its partitions by hand."""
    from tagging import tasks

    monkeypatch.setattr(tasks.compute_partition_task, "delay", lambda partition_id: None)


def test_try_4_two_runs_at_once_the_second_is_refused_naming_the_first(demo, no_worker, monkeypatch):
    from django.db import IntegrityError

    from tagging.models import SnapshotRun
    from tagging.services import snapshots

    admin = api_as(demo["admin"])
    first = admin.post("/api/v1/snapshot-runs/", {"as_of_date": "2026-10-31", "partition_size": 600}, format="json")
    assert first.status_code == 202
    run_id = first.json()["id"]
    second = admin.post("/api/v1/snapshot-runs/", {"as_of_date": "2026-10-31", "partition_size": 600}, format="json")
    assert second.status_code == 409 and f"run #{run_id} (as of 2026-10-31) is still running" in second.json()["detail"]
    # Two requests that both passed the friendly check before either wrote: the database refuses the second.
    checks = iter([None])
    original = snapshots._refuse_if_active
    monkeypatch.setattr(snapshots, "_refuse_if_active", lambda: next(checks, None) or original())
    raced = admin.post("/api/v1/snapshot-runs/", {"as_of_date": "2026-10-31", "partition_size": 600}, format="json")
    assert raced.status_code == 409 and f"run #{run_id}" in raced.json()["detail"]
    assert SnapshotRun.objects.filter(status="running").count() == 1
    with pytest.raises(IntegrityError):
        SnapshotRun.objects.create(as_of_date=date(2026, 10, 30), status="running", window_days=7, partition_size=600)


def test_try_5_a_backfill_published_later_is_history_not_current(demo, run_to_end):
    from tagging.models import Snapshot, SnapshotRun
    from tagging.services.snapshots import start_snapshot_run

    latest = Snapshot.objects.current()
    admin = api_as(demo["admin"])
    backfill = admin.post("/api/v1/snapshot-runs/", {"as_of_date": str(latest.as_of_date.replace(day=30)),
                                                    "partition_size": 600}, format="json")
    assert backfill.status_code == 202
    run = run_to_end(SnapshotRun.objects.get(id=backfill.json()["id"]))
    assert run.status == "succeeded"
    assert Snapshot.objects.current() == latest and not run.snapshot.is_current
    assert admin.post("/api/v1/audiences/preview", {"expression": "high_value"}, format="json").json()["snapshot"] == \
        str(latest.as_of_date)
    # A re-run of the latest date is current when published (the latest of that date).
    again = run_to_end(start_snapshot_run(as_of=latest.as_of_date, partition_size=600))
    assert Snapshot.objects.current().run == again


def test_analysts_cancel_a_stuck_run_and_nothing_more_runs(demo, no_worker):
    from tagging.models import Snapshot, SnapshotPartition, SnapshotRun
    from tagging.services import snapshots

    current = Snapshot.objects.current()
    admin = api_as(demo["admin"])
    run_id = admin.post("/api/v1/snapshot-runs/", {"as_of_date": "2026-10-31", "partition_size": 600}, format="json").json()["id"]
    assert api_as(demo["sales_chancheng"]).post(f"/api/v1/snapshot-runs/{run_id}/cancel/").status_code == 403
    cancelled = admin.post(f"/api/v1/snapshot-runs/{run_id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = admin.post(f"/api/v1/snapshot-runs/{run_id}/cancel/")
    assert again.status_code == 409 and "only a running run can be cancelled" in again.json()["detail"]
    for partition in SnapshotPartition.objects.filter(run_id=run_id):  # late deliveries find nothing to do
        snapshots.compute_partition(partition_id=partition.id)
    assert not SnapshotPartition.objects.filter(run_id=run_id, status=SnapshotPartition.Status.DONE).exists()
    assert SnapshotRun.objects.get(id=run_id).stage == "terminals" and Snapshot.objects.current() == current
    # The next run starts.
    assert admin.post("/api/v1/snapshot-runs/", {"as_of_date": "2026-10-31", "partition_size": 600}, format="json").status_code == 202


def test_a_worker_that_outlived_its_lease_writes_nothing(demo, no_worker, monkeypatch):
    import dataclasses

    from tagging.models import SnapshotPartition
    from tagging.services import snapshots
    from tagging.services.snapshots import start_snapshot_run
    from tagging.stages import STAGES

    run = start_snapshot_run(as_of=demo["run"].as_of_date, partition_size=600)
    slow, other = run.partitions.order_by("index")
    stage = STAGES[slow.stage]

    def outlived(fails: bool):
        def compute(con, work, path):
            # While this worker computes, its lease lapses; another worker claims the partition and finishes it.
            SnapshotPartition.objects.filter(id=slow.id).update(claimed_at=slow.run.created_at.replace(year=2000))
            monkeypatch.setitem(STAGES, stage.name, stage)
            snapshots.compute_partition(partition_id=slow.id)
            monkeypatch.setitem(STAGES, stage.name, dataclasses.replace(stage, compute=compute))
            if fails:
                raise RuntimeError("the late worker's share went away")
            return {"subscribers": -1}
        return compute

    for fails in (False, True):
        SnapshotPartition.objects.filter(id=slow.id).update(status="pending", claim="", summary={})
        monkeypatch.setitem(STAGES, stage.name, dataclasses.replace(stage, compute=outlived(fails)))
        snapshots.compute_partition(partition_id=slow.id)  # returns quietly: the partition is another's now
        slow.refresh_from_db()
        assert slow.status == SnapshotPartition.Status.DONE and slow.summary["subscribers"] == 600 and not slow.error
    monkeypatch.setitem(STAGES, stage.name, stage)
    run.refresh_from_db()
    assert run.status == "running"


def test_small_counts_stay_hidden_from_sales_staff(demo, settings):
    from microarea.audiences import living_in
    from tagging.services.audiences import SnapshotBitmaps

    settings.AREA_MIN_COUNT = 20
    area = MicroArea.objects.get(region__code="440604", kind=MicroArea.Kind.DISTRICT)
    place = f'area("{area.name}")'
    sales, admin = api_as(demo["sales_chancheng"]), api_as(demo["admin"])
    # A tag with a handful of members living there: what differencing two expressions would reveal.
    bitmaps = SnapshotBitmaps(demo["run"].snapshot, demo["admin"])
    residents = living_in(demo["run"].id, bytes(area.hexes))
    few = {code: len(bitmaps.tag(code) & residents & bitmaps.scope) for code in bitmaps.tag_codes}
    tag, members = next((code, n) for code, n in sorted(few.items()) if 0 < n < 20)
    exact = admin.post("/api/v1/audiences/preview", {"expression": f"{place} and {tag}"}, format="json").json()
    assert exact["count"] == members and exact["suppressed_below"] is None
    narrow = sales.post("/api/v1/audiences/preview", {"expression": f"{place} and {tag}"}, format="json").json()
    assert narrow["count"] == "< 20" and narrow["suppressed_below"] == 20
    assert all(row["count"] == "< 20" or row["count"] % 20 == 0 for row in narrow["by_region"])
    whole = sales.post("/api/v1/audiences/preview", {"expression": place}, format="json").json()["count"]
    rest = sales.post("/api/v1/audiences/preview", {"expression": f"{place} and not {tag}"}, format="json").json()["count"]
    assert whole % 20 == 0 and rest % 20 == 0 and whole - rest != members
    portrait = sales.post("/api/v1/audiences/profile", {"expression": place}, format="json").json()
    assert portrait["count"] == whole
    assert all(row["count"] == "< 20" and row["share"] is None or row["count"] % 20 == 0 for row in portrait["tags"])
    # Without area() counts are the district's and exact, as the home page shows them.
    assert isinstance(sales.post("/api/v1/audiences/preview", {"expression": tag}, format="json").json()["count"], int)
    # Single hexes are for analysts.
    home = duckdb.connect().sql(
        f"SELECT home_h3 FROM read_parquet('{snapshot_dir(demo['run'].id)}/location/*.parquet') "
        f"WHERE home_h3 IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchall()[0][0]
    cell = f"{home:x}"
    refused = sales.post("/api/v1/audiences/preview", {"expression": f'hex("{cell}")'}, format="json")
    assert refused.status_code == 400 and "counting single hexes is for analysts" in refused.json()["detail"]
    counted = admin.post("/api/v1/audiences/preview", {"expression": f'hex("{cell}")'}, format="json")
    assert counted.status_code == 200, counted.content
    # An area sales staff draw holds at least ten times AREA_MIN_COUNT residents.
    small = sales.post("/api/v1/microareas/", {"name": "一个格子", "region": "440604", "hexes": [f"{home:x}"]}, format="json")
    assert small.status_code == 400 and "needs at least 200 (ten times AREA_MIN_COUNT)" in small.json()["hexes"][0]
    assert "the area has fewer than 200 residents" in small.json()["hexes"][0]  # not how many: that is the small count
    large = sales.post("/api/v1/microareas/", {"name": "禅城全区", "region": "440604", "geometry": area.geometry}, format="json")
    assert large.status_code == 201, large.content
    assert admin.post("/api/v1/microareas/", {"name": "一个格子", "region": "440604", "hexes": [f"{home:x}"]},
                      format="json").status_code == 201


def test_a_shared_campaign_is_stepped_only_by_someone_covering_all_its_districts(published_city):
    chancheng, shunde = Region.objects.get(code="440604"), Region.objects.get(code="440606")
    one_district = staff_user(StaffProfile.Role.ADMIN, chancheng, username="cc_admin")
    both = staff_user(StaffProfile.Role.ADMIN, Region.objects.get(code="4406"), username="fs_admin")
    campaign = Campaign.objects.create(
        name="共享", product=Product.objects.get(code="5g_plan"), audience="high_value", channel="sms",
        start_date=date(2026, 11, 1), end_date=date(2026, 11, 30), owner=both)
    campaign.regions.set([chancheng, shunde])
    mine = api_as(one_district)
    for step in ("freeze", "start", "close"):
        refused = mine.post(f"/api/v1/campaigns/{campaign.id}/{step}/")
        assert refused.status_code == 403 and "also runs in 顺德区 440606" in refused.json()["regions"][0], refused.content
    campaign.refresh_from_db()
    assert campaign.status == "draft" and not targets_path(campaign).exists()
    assert api_as(both).post(f"/api/v1/campaigns/{campaign.id}/freeze/").status_code == 200
    assert mine.post(f"/api/v1/campaigns/{campaign.id}/start/").status_code == 403
    assert api_as(both).post(f"/api/v1/campaigns/{campaign.id}/start/").status_code == 200


def test_the_admin_campaign_form_offers_your_districts_and_checks_the_audience(published_city, client):
    chancheng = Region.objects.get(code="440604")
    manager = staff_user(StaffProfile.Role.ADMIN, chancheng, username="cc_admin")
    campaign = Campaign.objects.create(
        name="草稿", product=Product.objects.get(code="5g_plan"), audience="high_value", channel="sms",
        start_date=date(2026, 11, 1), end_date=date(2026, 11, 30), owner=manager)
    campaign.regions.set([chancheng])
    client.force_login(manager)
    url = f"/admin/campaigns/campaign/{campaign.id}/change/"
    form = client.get(url)
    offered = form.context["adminform"].form.fields["regions"].queryset
    assert list(offered.values_list("code", flat=True)) == ["440604"]
    body = {"name": "草稿", "purpose": "sale", "product": campaign.product_id, "audience": "high_value and lifecycle_at_rsk", "channel": "sms",
            "start_date": "2026-11-01", "end_date": "2026-11-30", "control_share": "0.1", "control_kind": "holdout",
            "regions": [chancheng.id]}
    refused = client.post(url, body)
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["audience"][0].startswith("column 16: unknown name 'lifecycle_at_rsk'")
    campaign.refresh_from_db()
    assert campaign.audience == "high_value"
    elsewhere = client.post(url, {**body, "audience": "high_value", "regions": [Region.objects.get(code="440606").id]})
    assert elsewhere.status_code == 200 and "regions" in elsewhere.context["adminform"].form.errors
    assert client.post(url, {**body, "audience": "high_value and lifecycle_at_risk"}).status_code == 302
    campaign.refresh_from_db()
    assert campaign.audience == "high_value and lifecycle_at_risk"


def test_a_regions_code_stays_once_subscribers_belong_and_a_move_carries_its_descendants(client, admin_user):
    from django.core.exceptions import ValidationError

    from tagging.models import Subscriber

    from .factories import RegionFactory, SubscriberFactory

    guangdong = RegionFactory(code="44", name="广东省", level=Region.Level.PROVINCE)
    foshan = RegionFactory(code="4406", name="佛山市", level=Region.Level.CITY, parent=guangdong)
    zhaoqing = RegionFactory(code="4412", name="肇庆市", level=Region.Level.CITY, parent=guangdong)
    district = RegionFactory(code="440604", name="禅城区", parent=foshan)
    town = RegionFactory(code="440604001", name="祖庙街道", level=Region.Level.DISTRICT, parent=district)
    SubscriberFactory(region=town)
    zhaoqing_staff = staff_user(StaffProfile.Role.SALES, zhaoqing, username="zq_sales")
    assert not Subscriber.objects.visible_to(zhaoqing_staff).exists()
    district.parent = zhaoqing
    district.full_clean()
    district.save()
    town.refresh_from_db()
    assert (district.path, town.path) == ("44/4412/440604/", "44/4412/440604/440604001/")
    assert Subscriber.objects.visible_to(zhaoqing_staff).count() == 1  # scoping follows the move
    district.code = "441299"
    with pytest.raises(ValidationError, match="its code cannot change"):
        district.full_clean()
    guangdong.parent = town
    with pytest.raises(ValidationError, match="itself or below it"):
        guangdong.full_clean()
    client.force_login(admin_user)
    answer = client.post(f"/admin/tagging/region/{district.id}/change/",
                         {"code": "441299", "name": "禅城区", "name_en": "", "level": "district", "parent": zhaoqing.id})
    assert answer.status_code == 200 and "its code cannot change" in answer.content.decode()
    assert Region.objects.get(pk=district.pk).code == "440604"


def test_rejected_rows_show_no_raw_numbers_outside_the_report(small_city, tmp_path, client):
    from tagging.models import IngestBatch
    from tagging.services.ingest import ingest_file

    ingest_city(small_city, ["regions", "subscribers"])
    stranger, imei = "13999990001", "3564850312345678"  # not a subscriber; an IMEI one digit too long
    path = tmp_path / "imei.csv"
    path.write_text(f"msisdn,date,imei\n{stranger},2026-10-30,356485031234567\n13800000000,2026-10-30,{imei}\n")
    batch = ingest_file(dataset="imei_observations", path=path)
    assert batch.status == IngestBatch.Status.REJECTED
    shown = str(batch.errors) + batch.message
    assert stranger not in shown and imei not in shown and "139****0001" in shown, shown
    report = Path(batch.report_path)
    assert stranger in report.read_text() and imei in report.read_text()
    assert report.stat().st_mode & 0o777 == 0o640
    analyst = staff_user(StaffProfile.Role.ADMIN, Region.objects.get(code="4406"), username="analyst")
    sales = staff_user(StaffProfile.Role.SALES, Region.objects.get(code="440604"), username="sales_chancheng")
    listed = api_as(analyst).get(f"/api/v1/ingest-batches/{batch.id}/")
    assert listed.status_code == 200 and stranger not in listed.content.decode() and "139****0001" in listed.content.decode()
    assert api_as(sales).get(f"/api/v1/ingest-batches/{batch.id}/").status_code == 403
    client.force_login(analyst)
    page = client.get(f"/admin/tagging/ingestbatch/{batch.id}/change/").content.decode()
    assert "139****0001" in page and stranger not in page and imei not in page


def test_what_a_killed_ingest_left_is_swept_and_blocks_nothing(small_city, data_dir):
    from django.core.management import call_command

    from tagging.lake import store
    from tagging.models import IngestBatch
    from tagging.services.ingest import ingest_file

    ingest_city(small_city, ["regions"])

    def killed_mid_ingest() -> tuple[IngestBatch, list[Path]]:
        """What `kill -9` leaves of an ingest of the subscribers file: its batch running, its files."""
        batch = IngestBatch.objects.create(dataset="subscribers", file_name=str(small_city / "subscribers.csv"))
        folder = store.dataset_dir("subscribers")
        folder.mkdir(parents=True, exist_ok=True)
        files = [folder / f".staging-{batch.id}.parquet", store.batch_path("subscribers", batch.id),
                 data_dir / "tmp" / f"ingest-{batch.id}.csv"]
        for leftover in files:
            leftover.parent.mkdir(parents=True, exist_ok=True)
            leftover.write_bytes(b"half written")
        return batch, files

    batch, files = killed_mid_ingest()
    call_command("resume_runs")  # what beat does every five minutes
    batch.refresh_from_db()
    assert batch.status == IngestBatch.Status.REJECTED and "Abandoned" in batch.message
    assert not any(f.exists() for f in files)
    # The next ingest of the dataset is not blocked, and sweeps what it finds first.
    batch, files = killed_mid_ingest()
    again = ingest_file(dataset="subscribers", path=small_city / "subscribers.csv")
    assert again.status == IngestBatch.Status.ACCEPTED
    batch.refresh_from_db()
    assert batch.status == IngestBatch.Status.REJECTED and not any(f.exists() for f in files)
    assert Path(again.lake_path).exists()
    call_command("resume_runs")  # an accepted file is never swept
    assert Path(again.lake_path).exists()


@pytest.mark.skipif(SERVICES, reason="the session's worker keeps the DATA_DIR it was started with: runs in `make test`")
def test_the_lake_moves_to_another_folder_and_everything_still_reads(published_city, data_dir, tmp_path, settings, run_to_end):
    import shutil

    from django.db import connection

    from tagging.models import IngestBatch
    from tagging.services.audiences import preview_audience
    from tagging.services.snapshots import start_snapshot_run

    analyst = staff_user(StaffProfile.Role.ADMIN, Region.objects.get(code="4406"), username="analyst")
    before = preview_audience(expression="high_value", user=analyst)["count"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT lake_path FROM tagging_ingestbatch WHERE lake_path <> ''")
        stored = [row[0] for row in cursor.fetchall()]
    assert stored and all(path.startswith("lake/") for path in stored)  # relative to DATA_DIR, as stored
    assert published_city.definitions["location"]["coverage"].startswith("lake/coverage/")
    moved = tmp_path / "restored" / "data"
    shutil.copytree(data_dir, moved)
    shutil.rmtree(data_dir)
    settings.DATA_DIR, settings.LAKE_DIR = moved, moved / "lake"
    assert all(Path(b.lake_path).is_file() and str(moved) in b.lake_path for b in IngestBatch.objects.accepted())
    area = MicroArea.objects.get(region__code="440604", kind=MicroArea.Kind.DISTRICT)
    assert preview_audience(expression=f'high_value and area("{area.name}")', user=analyst)["count"] > 0
    exported = api_as(analyst).get(f"/api/v1/microareas/{area.id}/targets/?product=5g_plan&format=json")
    assert exported.status_code == 200 and b'"rows": [[' in b"".join(exported.streaming_content)
    again = run_to_end(start_snapshot_run(as_of=published_city.as_of_date, partition_size=600))
    assert again.status == "succeeded", again.error
    assert preview_audience(expression="high_value", user=analyst)["count"] == before
    assert not data_dir.exists()
