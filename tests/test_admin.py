"""Admins watch ingests and runs in Django admin and start runs there or through the API."""

import pytest
from rest_framework.test import APIClient

from tagging.models import IngestBatch, Region, SnapshotRun, StaffProfile
from tagging.services.ingest import ingest_file

from .conftest import SMALL_CITY, ingest_city
from .factories import staff_user


@pytest.mark.django_db
def test_rejected_batch_shows_its_rows_in_admin(small_city, client, tmp_path):
    ingest_city(small_city, ["regions"])
    bad = tmp_path / "products.csv"
    bad.write_text("code,name,name_en,category,monthly_fee_yuan\nBad Code,套餐,Plan,plan,-3\n", encoding="utf-8")
    batch = ingest_file(dataset="products", path=bad)
    staff_user(StaffProfile.Role.ADMIN, Region.objects.get(code="4406"), username="analyst")
    client.login(username="analyst", password="pass-word-123")
    listing = client.get("/admin/tagging/ingestbatch/?status=rejected").content.decode()
    assert "products.csv" in listing
    page = client.get(f"/admin/tagging/ingestbatch/{batch.id}/change/").content.decode()
    assert "product code must be lower-case" in page and "below the minimum 0" in page


@pytest.mark.django_db(transaction=True)
def test_admin_starts_a_run_through_the_api_and_watches_it(small_city, client, run_to_end):
    ingest_city(small_city)
    analyst = staff_user(StaffProfile.Role.ADMIN, Region.objects.get(code="4406"), username="analyst")
    api = APIClient()
    api.force_authenticate(analyst)
    response = api.post("/api/v1/snapshot-runs/", {"as_of_date": SMALL_CITY.end_date.isoformat(), "partition_size": 500}, format="json")
    assert response.status_code == 202, response.content
    run = run_to_end(SnapshotRun.objects.get(id=response.json()["id"]))
    assert run.status == SnapshotRun.Status.SUCCEEDED
    detail = api.get(f"/api/v1/snapshot-runs/{run.id}/").json()
    assert detail["progress"] == 1.0 and len(detail["partitions"]) == 36  # 3 id ranges x 12 stages
    assert api.post("/api/v1/snapshot-runs/", {"as_of_date": "2099-01-01"}, format="json").status_code == 409
    assert api.post("/api/v1/snapshot-runs/", {"as_of_date": "yesterday"}, format="json").status_code == 400
    client.force_login(analyst)
    page = client.get(f"/admin/tagging/snapshotrun/{run.id}/change/").content.decode()
    assert "features" in page and "100%" in client.get("/admin/tagging/snapshotrun/").content.decode()
    assert IngestBatch.objects.accepted().count() == 13


@pytest.mark.django_db(transaction=True)
def test_a_subscribers_admin_page_shows_their_tags_and_features_now(published_city, client):
    from tagging.models import Snapshot, Subscriber
    from tagging.selectors import behaviour_terms, subscriber_features
    from tagging.services.audiences import load_bitmap, snapshot_index

    chancheng = Region.objects.get(code="440604")
    client.force_login(staff_user(StaffProfile.Role.SALES, chancheng, username="sales_profile"))
    snapshot = Snapshot.objects.current()
    stamp = snapshot.published_at.timestamp()
    index = snapshot_index(snapshot.id, stamp)["tag"]
    subscriber = Subscriber.objects.filter(region=chancheng).order_by("id").first()
    # What they do online and whom they call (interest, circle, inter-network tags) is for analysts: not on a sales page.
    behaviour = set(behaviour_terms())
    held = sorted(code for code, pk in index.items() if subscriber.id in load_bitmap("tag", pk, stamp))
    not_held = sorted(set(index) - set(held))
    page = client.get(f"/admin/tagging/subscriber/{subscriber.id}/change/").content.decode()
    assert held and all(f"({code})" in page for code in held if code not in behaviour)
    assert not any(f"({code})" in page for code in [*not_held, *(set(held) & behaviour)])
    sms = subscriber_features(subscriber_id=subscriber.id)["sms_30d"]
    assert f"<td><code>sms_30d</code></td><td>{sms}</td>" in page
    assert f"/api/v1/subscribers/{subscriber.id}/profile/" in page and subscriber.msisdn not in page


@pytest.mark.django_db(transaction=True)
def test_admin_starts_a_run_from_admin_and_a_refused_one_starts_nothing(small_city, client, run_to_end):
    ingest_city(small_city)
    staff_user(StaffProfile.Role.ADMIN, Region.objects.get(code="4406"), username="analyst")
    staff_user(StaffProfile.Role.SALES, Region.objects.get(code="440604"), username="sales")
    client.login(username="analyst", password="pass-word-123")
    assert "开始快照运行" in client.get("/admin/tagging/snapshotrun/").content.decode()
    form = client.get("/admin/tagging/snapshotrun/start/")
    assert form.status_code == 200 and form.context["form"].initial["as_of_date"] == SMALL_CITY.end_date  # the usage data's last day

    for fields, problem in [({"as_of_date": "2099-01-01", "window_days": 30}, "is in the future"),
                            ({"as_of_date": "2026-02-30", "window_days": 30}, "有效的日期"),  # Django's own words, in Chinese
                            ({"as_of_date": SMALL_CITY.end_date.isoformat(), "window_days": 400}, "小于或等于366"),
                            ({"as_of_date": SMALL_CITY.end_date.isoformat(), "window_days": 0}, "大于或等于1")]:
        refused = client.post("/admin/tagging/snapshotrun/start/", fields)
        assert refused.status_code == 200 and problem in refused.content.decode(), fields
    assert not SnapshotRun.objects.exists()

    response = client.post("/admin/tagging/snapshotrun/start/", {"as_of_date": SMALL_CITY.end_date.isoformat(),
                                                                 "window_days": SMALL_CITY.days})
    run = SnapshotRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/admin/tagging/snapshotrun/{run.id}/change/"
    assert (run.as_of_date, run.window_days, run.created_by.username) == (SMALL_CITY.end_date, SMALL_CITY.days, "analyst")
    assert run_to_end(run).status == SnapshotRun.Status.SUCCEEDED
    assert f"快照运行 #{run.id}" in client.get(response["Location"]).content.decode()

    client.logout()
    client.login(username="sales", password="pass-word-123")
    assert client.get("/admin/tagging/snapshotrun/start/").status_code in (302, 403)  # sales staff have no admin
    assert SnapshotRun.objects.count() == 1
