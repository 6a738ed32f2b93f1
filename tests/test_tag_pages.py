"""The pages sales staff and analysts read tags on: a tag's page (its count per district, over snapshots,
who entered and left) and the audience page's tag library, all within the user's districts."""

import datetime

import pytest
from django.contrib.auth.models import User
from pyroaring import BitMap

from tagging.models import Region, RegionSnapshot, Snapshot, StaffProfile, Subscriber, TagSnapshot
from tagging.services.snapshots import start_snapshot_run
from tagging.services.tags import install_starting_catalogue

from .conftest import SMALL_CITY, ingest_city
from .factories import staff_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_snapshots(small_city, run_to_end):
    ingest_city(small_city)
    install_starting_catalogue()
    for as_of in [SMALL_CITY.end_date - datetime.timedelta(days=7), SMALL_CITY.end_date]:
        run = run_to_end(start_snapshot_run(as_of=as_of, partition_size=600))
        assert run.status == "succeeded", run.error
    return list(Snapshot.objects.order_by("as_of_date"))


def members(snapshot: Snapshot, code: str, region: str) -> BitMap:
    """A tag's members in one district, straight from the stored bitmaps."""
    tag = BitMap.deserialize(bytes(TagSnapshot.objects.get(snapshot=snapshot, tag__code=code).bitmap))
    district = BitMap.deserialize(bytes(RegionSnapshot.objects.get(snapshot=snapshot, region__code=region).bitmap))
    return tag & district


def test_a_tags_page_shows_my_district_over_snapshots_and_who_changed(two_snapshots, client):
    before, after = two_snapshots
    staff_user(StaffProfile.Role.SALES, Region.objects.get(code="440604"), username="tag_sales")
    client.login(username="tag_sales", password="pass-word-123")
    # The tag that changed most in the district between the two snapshots: its page has something to show.
    code = max(TagSnapshot.objects.filter(snapshot=after).values_list("tag__code", flat=True),
               key=lambda c: len(members(before, c, "440604") ^ members(after, c, "440604")))
    was, now = members(before, code, "440604"), members(after, code, "440604")
    entered, left = now - was, was - now
    assert entered and left  # the city changes enough in a week for this test to mean something

    page = client.get(f"/tags/{code}/")
    assert page.status_code == 200
    html = page.content.decode()
    regions = page.context["by_region"]
    assert [(r["region"], r["count"]) for r in regions] == [("440604", len(now))]
    assert [(h["as_of_date"], h["count"], h["entered"], h["left"]) for h in page.context["history"]] == [
        (str(before.as_of_date), len(was), None, None), (str(after.as_of_date), len(now), len(entered), len(left))]
    assert f"+{len(entered):,}" in html and f"-{len(left):,}" in html
    assert html.count("<rect ") == 2 and f"<title>{after.as_of_date}: {len(now)}</title>" in html  # a bar per snapshot
    first_entered = Subscriber.objects.get(id=min(entered))
    assert first_entered.msisdn_masked in html and first_entered.msisdn not in html
    assert "南海区" not in html  # nothing of another district
    assert f'href="/audiences/?expression={code}"' in html


def test_a_tags_page_refuses_what_it_should(two_snapshots, client):
    staff_user(StaffProfile.Role.SALES, Region.objects.get(code="440604"), username="tag_sales")
    assert client.get("/tags/high_value/").status_code == 302  # log in first
    client.login(username="tag_sales", password="pass-word-123")
    assert client.get("/tags/no_such_tag/").status_code == 404
    User.objects.create_user("nobody", password="pass-word-123")  # no role: no tags
    client.login(username="nobody", password="pass-word-123")
    assert client.get("/tags/high_value/").status_code == 403
    assert client.get("/audiences/").status_code == 403


def test_the_audience_page_lists_the_current_tags_with_my_counts(two_snapshots, client):
    _, current = two_snapshots
    staff_user(StaffProfile.Role.SALES, Region.objects.get(code="440606"), username="shunde_sales")
    client.login(username="shunde_sales", password="pass-word-123")
    page = client.get("/audiences/?expression=high_value")
    assert page.status_code == 200
    listed = {row["tag"].code: row["count"] for row in page.context["library"]}
    codes = set(TagSnapshot.objects.filter(snapshot=current).values_list("tag__code", flat=True))
    assert set(listed) == codes
    assert all(listed[code] == len(members(current, code, "440606")) for code in codes)
    html = page.content.decode()
    assert 'data-code="high_value"' in html and ">high_value</textarea>" in html
    assert [s.id for s in page.context["snapshots"]] == [current.id, two_snapshots[0].id]
    assert "save-audience" not in html  # sales staff count; analysts save


def test_the_home_page_links_each_tag_to_its_page(two_snapshots, client):
    staff_user(StaffProfile.Role.SALES, Region.objects.get(code="440604"), username="tag_sales")
    client.login(username="tag_sales", password="pass-word-123")
    html = client.get("/").content.decode()
    assert 'href="/tags/high_value/"' in html and 'href="/audiences/"' in html
