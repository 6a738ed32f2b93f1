"""Everything a user sees is scoped to their regions, in lists, details, admin and API alike; MSISDNs masked."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tagging.models import Region, StaffProfile, Subscriber

from .factories import RegionFactory, SubscriberFactory, SubscriptionFactory, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def city():
    province = RegionFactory(code="44", name="广东省", level=Region.Level.PROVINCE)
    foshan = RegionFactory(code="4406", name="佛山市", level=Region.Level.CITY, parent=province)
    chancheng = RegionFactory(code="440604", name="禅城区", parent=foshan)
    shunde = RegionFactory(code="440606", name="顺德区", parent=foshan)
    mine = SubscriberFactory.create_batch(3, region=chancheng)
    theirs = SubscriberFactory.create_batch(2, region=shunde)
    return {"foshan": foshan, "chancheng": chancheng, "shunde": shunde, "mine": mine, "theirs": theirs}


def test_visible_to_follows_the_region_tree(city, django_user_model):
    sales = staff_user(StaffProfile.Role.SALES, city["chancheng"])
    analyst = staff_user(StaffProfile.Role.ADMIN, city["foshan"])
    nobody = django_user_model.objects.create_user("nobody", password="x-x-x-x-1")
    assert set(Subscriber.objects.visible_to(sales)) == set(city["mine"])
    assert Subscriber.objects.visible_to(analyst).count() == 5
    assert set(Region.objects.visible_to(analyst).values_list("code", flat=True)) == {"4406", "440604", "440606"}
    assert not Subscriber.objects.visible_to(nobody).exists()


def test_api_lists_and_details_only_the_callers_regions_masked(city):
    sales = staff_user(StaffProfile.Role.SALES, city["chancheng"])
    client = APIClient()
    client.force_authenticate(sales)
    listed = client.get("/api/v1/subscribers/").json()
    assert listed["count"] == 3
    assert all("****" in s["msisdn"] and len(s["msisdn"]) == 11 for s in listed["results"])
    mine, theirs = city["mine"][0], city["theirs"][0]
    assert client.get(f"/api/v1/subscribers/{mine.id}/").status_code == 200
    assert client.get(f"/api/v1/subscribers/{theirs.id}/").status_code == 404
    body = client.get(f"/api/v1/subscribers/{mine.id}/").content.decode()
    assert mine.msisdn not in body and mine.msisdn_masked in body


def test_api_region_filter_and_subscriptions(city):
    analyst = staff_user(StaffProfile.Role.ADMIN, city["foshan"])
    subscription = SubscriptionFactory(subscriber=city["theirs"][0])
    client = APIClient()
    client.force_authenticate(analyst)
    assert client.get("/api/v1/subscribers/?region=440606").json()["count"] == 2
    assert client.get("/api/v1/subscribers/?region=4406").json()["count"] == 5
    detail = client.get(f"/api/v1/subscribers/{subscription.subscriber_id}/").json()
    assert detail["subscriptions"][0]["product"] == subscription.product.code


def test_token_authentication_and_anonymous_refused(city):
    field = staff_user(StaffProfile.Role.FIELD, city["shunde"])
    client = APIClient()
    assert client.get("/api/v1/subscribers/").status_code in (401, 403)
    token = Token.objects.create(user=field)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.get("/api/v1/subscribers/")
    assert response.status_code == 200 and response.json()["count"] == 2


def test_an_expired_token_is_refused_and_signing_in_again_gives_a_new_one(city, settings):
    from datetime import timedelta

    from django.utils import timezone

    field = staff_user(StaffProfile.Role.FIELD, city["shunde"], username="tok_field")
    field.set_password("pw-2026")
    field.save(update_fields=["password"])
    client = APIClient()
    issued = client.post("/api/v1/auth/token/", {"username": "tok_field", "password": "pw-2026"}).json()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issued['token']}")
    assert client.get("/api/v1/subscribers/").status_code == 200
    Token.objects.filter(key=issued["token"]).update(created=timezone.now() - timedelta(hours=settings.API_TOKEN_HOURS + 1))
    expired = client.get("/api/v1/subscribers/")
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    renewed = APIClient().post("/api/v1/auth/token/", {"username": "tok_field", "password": "pw-2026"}).json()
    assert renewed["token"] != issued["token"] and not Token.objects.filter(key=issued["token"]).exists()
    client.credentials(HTTP_AUTHORIZATION=f"Token {renewed['token']}")
    assert client.get("/api/v1/subscribers/").status_code == 200
    assert APIClient().post("/api/v1/auth/token/", {"username": "tok_field", "password": "wrong"}).status_code == 400


def test_field_team_cannot_read_ingest_batches_nor_start_runs(city):
    field = staff_user(StaffProfile.Role.FIELD, city["shunde"])
    client = APIClient()
    client.force_authenticate(field)
    assert client.get("/api/v1/ingest-batches/").status_code == 403
    assert client.post("/api/v1/snapshot-runs/", {"as_of_date": "2026-10-31"}).status_code == 403


def test_admin_changelist_is_scoped_and_masked(city, client):
    sales = staff_user(StaffProfile.Role.SALES, city["chancheng"], username="sales1")
    client.force_login(sales)
    page = client.get("/admin/tagging/subscriber/").content.decode()
    for subscriber in city["mine"]:
        assert subscriber.msisdn_masked in page and subscriber.msisdn not in page
    for subscriber in city["theirs"]:
        assert subscriber.msisdn_masked not in page
    theirs = city["theirs"][0]
    assert client.get(f"/admin/tagging/subscriber/{theirs.id}/change/").status_code in (302, 404)
    detail = client.get(f"/admin/tagging/subscriber/{city['mine'][0].id}/change/").content.decode()
    assert city["mine"][0].msisdn not in detail
    # A year, without a thousands separator (English formats group 4 digits: 1,985).
    english = client.get(f"/admin/tagging/subscriber/{city['mine'][0].id}/change/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert ">1985<" in english and "1,985" not in english


def test_admin_search_by_full_number_finds_only_visible_subscribers(city, client):
    sales = staff_user(StaffProfile.Role.SALES, city["chancheng"], username="sales2")
    client.force_login(sales)
    mine, theirs = city["mine"][0], city["theirs"][0]
    assert mine.msisdn_masked in client.get(f"/admin/tagging/subscriber/?q={mine.msisdn}").content.decode()
    assert theirs.msisdn_masked not in client.get(f"/admin/tagging/subscriber/?q={theirs.msisdn}").content.decode()
