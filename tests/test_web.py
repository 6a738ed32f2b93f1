"""Login, the home page, the health check and the API documentation."""

import pytest

from tagging.models import StaffProfile

from .factories import RegionFactory, SubscriberFactory, staff_user

pytestmark = pytest.mark.django_db


def test_home_needs_login_and_then_shows_my_regions(client):
    assert client.get("/").status_code == 302
    region = RegionFactory(code="440604", name="禅城区", name_en="Chancheng")
    SubscriberFactory.create_batch(4, region=region)
    staff_user(StaffProfile.Role.SALES, region, username="sales")
    response = client.post("/accounts/login/", {"username": "sales", "password": "pass-word-123"})
    assert response.status_code == 302
    page = client.get("/").content.decode()
    assert "禅城区" in page and "Chancheng" not in page and ">4<" in page  # Chinese by default
    assert "/api/docs/" in page and "微区域地图" in page and "营销活动" in page
    # The header's switch sets English for the session: labels and the region's English name.
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    page = client.get("/").content.decode()
    assert "Chancheng" in page and "微区域地图" not in page and "Map" in page and "Campaigns" in page


def test_wrong_password_is_refused(client):
    staff_user(StaffProfile.Role.SALES, RegionFactory(), username="sales")
    response = client.post("/accounts/login/", {"username": "sales", "password": "wrong"})
    assert response.status_code == 200 and "用户名或密码错误" in response.content.decode()


def test_pages_and_admin_declare_their_icon(client, admin_user):
    # Without one, browsers request /favicon.ico on every page: a 404 in every console. The site and admin
    # templates declare an empty icon.
    for path in ["/accounts/login/", "/admin/login/"]:
        assert '<link rel="icon" href="data:,">' in client.get(path).content.decode(), path
    client.force_login(admin_user)
    assert '<link rel="icon" href="data:,">' in client.get("/admin/tagging/tagdefinition/").content.decode()


def test_healthz_reports_database_broker_and_lake(client, settings, tmp_path):
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "lake"}
    settings.LAKE_DIR = tmp_path / "file-not-dir"
    (tmp_path / "file-not-dir").write_text("x")
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["checks"]["lake"]["ok"] is False


def test_healthz_reports_an_unreachable_broker(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["checks"]["broker"]["ok"] is False


def test_openapi_schema_and_docs_served_without_a_cdn(client):
    staff_user(StaffProfile.Role.ADMIN, RegionFactory(), username="analyst")
    client.login(username="analyst", password="pass-word-123")
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/subscribers/" in schema.content
    docs = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in docs and "cdn" not in docs.lower()


def test_demo_accounts_one_per_role_and_never_in_production(small_city, capsys, settings):
    from django.core.management import CommandError, call_command

    from .conftest import ingest_city

    ingest_city(small_city, ["regions"])
    settings.DEBUG = False
    with pytest.raises(CommandError, match="only with DEBUG=1, never in production"):
        call_command("create_demo_accounts")
    assert not StaffProfile.objects.exists()
    settings.DEBUG = True
    call_command("create_demo_accounts")
    out = capsys.readouterr().out
    assert {"admin", "sales_chancheng", "field_shunde"} <= set(out.split())
    assert set(StaffProfile.objects.values_list("role", flat=True)) == {"admin", "sales", "field"}


@pytest.mark.django_db(transaction=True)
def test_home_usage_cards_count_only_my_regions(small_city, client, run_to_end):
    from tagging.models import Region, Subscriber
    from tagging.services.snapshots import start_snapshot_run

    from .conftest import SMALL_CITY, ingest_city

    ingest_city(small_city)
    run_to_end(start_snapshot_run(as_of=SMALL_CITY.end_date, partition_size=600))
    region = Region.objects.get(code="440604")
    staff_user(StaffProfile.Role.SALES, region, username="sales")
    client.login(username="sales", password="pass-word-123")
    mine = Subscriber.objects.filter(region=region).count()
    page = client.get("/").content.decode()
    assert f"我的区域共 {mine:,} 人" in page
    assert mine < SMALL_CITY.subscribers
