"""Audience preview, tag history and diff, the tag and profile API, and the tag admin, all region-scoped."""

import duckdb
import pytest
from django.test import Client
from pyroaring import BitMap
from rest_framework.test import APIClient

from tagging.models import Region, Snapshot, Subscriber, TagDefinition, TagSnapshot
from tagging.services.audiences import preview_audience
from tagging.services.snapshots import start_snapshot_run
from tagging.services.tags import install_starting_catalogue, save_tag_definition
from tagging.stages import snapshot_dir

from .conftest import SMALL_CITY, ingest_city
from .factories import staff_user

pytestmark = pytest.mark.django_db(transaction=True)
CHANCHENG = "440604"


@pytest.fixture
def published(small_city, run_to_end):
    """Two published snapshots; sms_expert was loosened in between, so it has a history worth showing."""
    ingest_city(small_city)
    install_starting_catalogue()
    run_to_end(start_snapshot_run(as_of=SMALL_CITY.end_date, window_days=SMALL_CITY.days, partition_size=500))
    tag = TagDefinition.objects.get(code="sms_expert")
    tag.expression = "sms_30d >= 40"
    save_tag_definition(tag=tag)
    run_to_end(start_snapshot_run(as_of=SMALL_CITY.end_date, window_days=SMALL_CITY.days, partition_size=500))
    return Snapshot.objects.current()


def api_for(role: str, *region_codes: str, username: str) -> APIClient:
    api = APIClient()
    api.force_authenticate(staff_user(role, *Region.objects.filter(code__in=region_codes), username=username))
    return api


def _from_tag_files(snapshot: Snapshot, condition: str, region: str | None = None) -> int:
    """The same count straight from the stage's files, without bitmaps."""
    run = snapshot_dir(snapshot.run_id)
    where = f" AND f.region_code = '{region}'" if region else ""
    return duckdb.execute(
        f"SELECT count(*) FROM read_parquet('{run}/tags/*.parquet') t JOIN read_parquet('{run}/features/*.parquet') f "
        f"USING (subscriber_id) WHERE ({condition}){where}"
    ).fetchone()[0]


def test_preview_counts_the_audience_per_district_for_the_callers_regions(published):
    expression = "high_value and lifecycle_at_risk or sms_expert and not night_active"
    condition = "t.high_value AND t.lifecycle_at_risk OR t.sms_expert AND NOT t.night_active"
    admin = api_for("admin", "4406", username="analyst")
    response = admin.post("/api/v1/audiences/preview", {"expression": expression}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == _from_tag_files(published, condition) > 0
    assert body["subscribers"] == SMALL_CITY.subscribers and body["snapshot"] == str(published.as_of_date)
    assert len(body["by_region"]) == 5 and sum(r["count"] for r in body["by_region"]) == body["count"]
    assert body["elapsed_ms"] >= 0

    sales = api_for("sales", CHANCHENG, username="sales")
    mine = sales.post("/api/v1/audiences/preview", {"expression": expression}, format="json").json()
    assert mine["by_region"] == [{"region": CHANCHENG, "name": "禅城区", "count": _from_tag_files(published, condition, CHANCHENG)}]
    assert mine["count"] == mine["by_region"][0]["count"] < body["count"]
    assert mine["subscribers"] == Subscriber.objects.filter(region__code=CHANCHENG).count()
    # `not` is taken within the caller's regions, never over everyone.
    everyone_else = sales.post("/api/v1/audiences/preview", {"expression": "not comm_active"}, format="json").json()
    assert everyone_else["count"] == _from_tag_files(published, "NOT t.comm_active", CHANCHENG)


@pytest.mark.parametrize(
    "expression, status, needle, column",
    [
        ("high_value and lifecycle_at_rsk", 400, "unknown name 'lifecycle_at_rsk'; did you mean lifecycle_at_risk", 16),
        ("high_value and (sms_expert", 400, "syntax error", None),
        ("sms_30d >= 300", 400, "'sms_30d' is a feature; audiences select by tags", 1),
        ('high_value and area("禅城-季华")', 400, "no micro-area of that name in your districts", None),
        ('high_value and hex("not-a-hex")', 400, "counting single hexes is for analysts", None),
        ("high_value.__class__", 400, "attribute access is not allowed", 1),
        ("", 400, "'expression'", None),  # the field named, in the site's language
    ],
)
def test_a_bad_audience_is_a_400_naming_the_position(published, expression, status, needle, column):
    api = api_for("sales", CHANCHENG, username="sales")
    for question in ["preview", "profile"]:
        response = api.post(f"/api/v1/audiences/{question}", {"expression": expression}, format="json")
        assert response.status_code == status
        assert needle in str(response.json())
        if column:
            assert response.json()["error"]["column"] == column


def test_the_profile_indexes_every_other_tag_against_my_regions(published):
    """人群画像: each tag's share in the audience against its share in the caller's district (TGI)."""
    api = api_for("sales", CHANCHENG, username="sales")
    body = api.post("/api/v1/audiences/profile", {"expression": "comm_active and need_data"}, format="json").json()
    audience = "t.comm_active AND t.need_data"
    size, everyone = _from_tag_files(published, audience, CHANCHENG), Subscriber.objects.filter(region__code=CHANCHENG).count()
    assert (body["count"], body["subscribers"]) == (size, everyone) and size > 0
    codes = set(TagSnapshot.objects.filter(snapshot=published).values_list("tag__code", flat=True))
    assert {row["tag"] for row in body["tags"]} == codes - {"comm_active", "need_data"}
    for row in body["tags"]:
        count = _from_tag_files(published, f'{audience} AND t."{row["tag"]}"', CHANCHENG)
        base = _from_tag_files(published, f't."{row["tag"]}"', CHANCHENG)
        assert (row["count"], row["share"], row["base_share"]) == (count, count / size, base / everyone), row["tag"]
        assert row["index"] == (round(100 * (count / size) / (base / everyone)) if base else None)
    indexes = [row["index"] for row in body["tags"] if row["index"] is not None]
    assert indexes == sorted(indexes, reverse=True) and indexes[0] > 100 > indexes[-1]
    assert next(row for row in body["tags"] if row["tag"] == "high_value")["name"] == "高价值用户"


def test_preview_needs_a_signed_in_user_with_the_tag_permission_and_a_snapshot(small_city):
    assert APIClient().post("/api/v1/audiences/preview", {"expression": "x"}, format="json").status_code in (401, 403)
    ingest_city(small_city, datasets=["regions", "products"])
    install_starting_catalogue()
    api = api_for("field", "440606", username="field")
    response = api.post("/api/v1/audiences/preview", {"expression": "high_value"}, format="json")
    assert response.status_code == 400 and "no published snapshot yet" in response.json()["detail"]


def test_tags_list_counts_and_trends_in_the_callers_regions(published):
    sales = api_for("sales", CHANCHENG, username="sales")
    tags = {t["code"]: t for t in sales.get("/api/v1/tags/?page_size=100").json()["results"]}
    assert len(tags) >= 30
    chancheng = BitMap.deserialize(bytes(published.regions.get(region__code=CHANCHENG).bitmap))
    stored = BitMap.deserialize(bytes(TagSnapshot.objects.get(snapshot=published, tag__code="sms_expert").bitmap))
    expert = tags["sms_expert"]
    assert expert["count"] == len(stored & chancheng)
    assert expert["trend"] == expert["count"] - expert["previous_count"] > 0  # the rule was loosened
    assert sales.get("/api/v1/tags/?category=lifecycle").json()["count"] == 6

    detail = sales.get("/api/v1/tags/sms_expert/").json()
    assert [h["count"] for h in detail["history"]] == [expert["previous_count"], expert["count"]]
    assert detail["history"][1]["entered"] - detail["history"][1]["left"] == expert["trend"]
    assert [v["number"] for v in detail["versions"]] == [2, 1] and detail["versions"][0]["change"] == "expression changed"

    diff = sales.get("/api/v1/tags/sms_expert/diff/").json()
    assert diff["entered"] - diff["left"] == expert["trend"] and diff["left"] == 0
    assert diff["entered_sample"] and all("****" in s["msisdn"] for s in diff["entered_sample"])
    assert set(s["id"] for s in diff["entered_sample"]) <= set(chancheng)
    assert sales.get("/api/v1/tags/sms_expert/diff/?before=999999").status_code == 404
    assert sales.get("/api/v1/tags/no_such_tag/").status_code == 404


def test_a_subscriber_profile_shows_tags_timeline_and_features_masked_and_scoped(published):
    sales = api_for("sales", CHANCHENG, username="sales")
    mine = Subscriber.objects.filter(region__code=CHANCHENG).order_by("id").first()
    theirs = Subscriber.objects.exclude(region__code=CHANCHENG).first()
    profile = sales.get(f"/api/v1/subscribers/{mine.id}/profile/").json()
    assert profile["subscriber"]["msisdn"] == mine.msisdn_masked and mine.msisdn not in str(profile)
    # Sales staff see every tag held but the behaviour families (interest, circle, inter-network: analysts only).
    held = {code for code, pk in TagSnapshot.objects.filter(snapshot=published).exclude(
                tag__category__in=["interest", "circle", "internetwork"]).values_list("tag__code", "id")
            if mine.id in BitMap.deserialize(bytes(TagSnapshot.objects.get(id=pk).bitmap))}
    assert {t["code"] for t in profile["tags"]} == held
    assert len(profile["timeline"]) == 2 and profile["timeline"][-1]["tags"] == sorted(held)
    assert profile["features"]["region_code"] == CHANCHENG and "sms_30d" in profile["features"]
    assert sales.get(f"/api/v1/subscribers/{theirs.id}/profile/").status_code == 404


def test_the_admin_story_write_a_rule_see_the_count_save_a_version(published):
    analyst = staff_user("admin", Region.objects.get(code="4406"), username="analyst")
    analyst.is_staff = True
    analyst.save()
    browser = Client()
    browser.force_login(analyst)

    page = browser.get("/admin/tagging/tagdefinition/").content.decode()
    assert "sms_expert" in page and "人数" in page and "特征目录" in page
    assert "sms_package_fee" in browser.get("/admin/tagging/tagdefinition/features/").content.decode()

    rule = "sms_30d >= 300 and sms_package_fee < 20"
    preview = browser.get("/admin/tagging/tagdefinition/preview/", {"expression": rule}).json()
    assert preview["count"] == _from_tag_files(published, "f.sms_30d >= 300 AND f.sms_package_fee < 20")
    wrong = browser.get("/admin/tagging/tagdefinition/preview/", {"expression": "sms_30d >= 300 and sms_fee < 20"})
    assert wrong.status_code == 400 and wrong.json()["error"]["column"] == 20 and wrong.json()["error"]["token"] == "sms_fee"

    form = {"code": "sms_heavy_small_pack", "name": "短信多小包", "name_en": "SMS-heavy on a small pack",
            "category": "need", "kind": "rule", "expression": "sms_30d >= 300 and sms_fee < 20", "enabled": "on",
            "description": "Operators' SMS upsell list.", "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"}
    refused = browser.post("/admin/tagging/tagdefinition/add/", form)
    assert refused.status_code == 200 and "column 20: unknown name &#x27;sms_fee&#x27;" in refused.content.decode()
    assert not TagDefinition.objects.filter(code="sms_heavy_small_pack").exists()
    saved = browser.post("/admin/tagging/tagdefinition/add/", {**form, "expression": rule})
    assert saved.status_code == 302
    tag = TagDefinition.objects.get(code="sms_heavy_small_pack")
    assert (tag.version, tag.updated_by, tag.versions.get().author) == (1, analyst, analyst)
    change = browser.get(f"/admin/tagging/tagdefinition/{tag.id}/change/").content.decode()
    assert "rule-preview" in change and "versions" in change

    sales = staff_user("sales", Region.objects.get(code=CHANCHENG), username="sales")
    sales.is_staff = True
    sales.save()
    browser.force_login(sales)
    assert browser.post("/admin/tagging/tagdefinition/add/", form).status_code == 403
    assert preview_audience(expression="high_value", user=sales)["subscribers"] == Subscriber.objects.filter(region__code=CHANCHENG).count()


def test_the_home_page_shows_the_tag_library_in_the_users_regions(published):
    sales = staff_user("sales", Region.objects.get(code=CHANCHENG), username="sales")
    browser = Client()
    browser.force_login(sales)
    page = browser.get("/").content.decode()
    chancheng = BitMap.deserialize(bytes(published.regions.get(region__code=CHANCHENG).bitmap))
    experts = BitMap.deserialize(bytes(TagSnapshot.objects.get(snapshot=published, tag__code="sms_expert").bitmap))
    assert 'id="tag-library"' in page and "短信专家" in page and "SMS expert" not in page  # the tag's name in the page's language
    assert f'<td class="num">{len(experts & chancheng):,}</td>' in page
