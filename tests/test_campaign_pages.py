"""A campaign manager's pages: a new draft from an audience, then freeze, start and close on its report;
every refusal says what is wrong and changes nothing."""

from urllib.parse import quote

import pytest

from campaigns.models import Campaign, SavedAudience
from tagging.models import Region, StaffProfile

from .factories import staff_user

pytestmark = pytest.mark.django_db(transaction=True)  # the run's tasks are sent when its transaction commits


@pytest.fixture
def city(published_city):
    chancheng, shunde = Region.objects.get(code="440604"), Region.objects.get(code="440606")
    return {"chancheng": chancheng, "shunde": shunde,
            "manager": staff_user(StaffProfile.Role.ADMIN, chancheng, username="cm"),
            "sales": staff_user(StaffProfile.Role.SALES, chancheng, username="sales")}


def draft_form(**fields) -> dict:
    return {"name": "5G升级 禅城", "product": _product("5g_plan"), "audience": "five_g_handset_no_plan",
            "channel": "outbound_call", "start_date": "2026-11-01", "end_date": "2026-11-30", "control_kind": "random",
            "control_share": "0.2", "regions": [str(Region.objects.get(code="440604").pk)], **fields}


def _product(code: str) -> str:
    from tagging.models import Product

    return str(Product.objects.get(code=code).pk)


def test_a_campaign_manager_drafts_freezes_starts_and_closes_a_campaign_from_the_pages(city, client):
    client.force_login(city["manager"])
    assert "新建营销活动" in client.get("/campaigns/").content.decode()
    page = client.get("/campaigns/new/").content.decode()
    # Only the manager's own districts are offered.
    assert "禅城区" in page and "顺德区" not in page

    response = client.post("/campaigns/new/", draft_form())
    campaign = Campaign.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/campaigns/{campaign.id}/"
    assert (campaign.status, campaign.owner, campaign.control_kind, float(campaign.control_share)) == ("draft", city["manager"], "random", 0.2)
    assert list(campaign.regions.values_list("code", flat=True)) == ["440604"]
    report = client.get(response["Location"]).content.decode()
    step = f'action="/campaigns/{campaign.id}/{{}}/"'.format  # a step's button
    assert "草稿已保存" in report and step("freeze") in report and step("start") not in report

    report = client.post(f"/campaigns/{campaign.id}/freeze/", follow=True).content.decode()
    campaign.refresh_from_db()
    assert campaign.status == "frozen" and campaign.counts["targets"] > 0 and campaign.counts["control"] > 0
    assert "已冻结：" in report and step("start") in report and step("freeze") not in report

    client.post(f"/campaigns/{campaign.id}/start/")
    campaign.refresh_from_db()
    assert campaign.status == "running"
    client.post(f"/campaigns/{campaign.id}/close/")
    campaign.refresh_from_db()
    assert campaign.status == "closed"
    assert 'id="steps"' not in client.get(f"/campaigns/{campaign.id}/").content.decode()  # nothing left to do


@pytest.mark.parametrize(
    "fields, field, needle",
    [
        ({"audience": "five_g_handset_no_plan and"}, "audience", "column 27: syntax error: the expression ends too early"),
        ({"audience": "no_such_tag"}, "audience", "unknown name 'no_such_tag'"),
        ({"audience": 'area("顺德区")'}, "audience", "顺德区"),  # another district's area
        ({"audience": ""}, "audience", "Write an audience or pick a saved one"),
        ({"end_date": "2026-10-01"}, "end_date", "ends before it starts"),
        ({"start_date": "2026-11-31"}, "start_date", "有效的日期"),
        ({"control_share": "0.9"}, "control_share", "小于或等于0.5"),
        ({"control_share": "0"}, "control_share", "大于或等于0.01"),
        ({"regions": []}, "regions", "必填项"),
        ({"channel": "carrier_pigeon"}, "channel", "有效的选项"),
        ({"product": "99999"}, "product", "有效的选项"),
        ({"name": ""}, "name", "必填项"),
    ],
)
def test_a_refused_draft_names_the_field_and_saves_nothing(city, client, fields, field, needle):
    """Django's own messages come in the site's language, Chinese."""
    client.force_login(city["manager"])
    response = client.post("/campaigns/new/", draft_form(**fields))
    assert response.status_code == 200 and Campaign.objects.count() == 0
    errors = response.context["form"].errors
    assert field in errors and any(needle in e for e in errors[field]), errors


def test_another_districts_choices_cannot_be_posted(city, client):
    client.force_login(city["manager"])
    elsewhere = SavedAudience.objects.create(name="顺德", expression="high_value", owner=city["manager"])
    elsewhere.regions.set([city["shunde"]])
    response = client.post("/campaigns/new/", draft_form(regions=[str(city["shunde"].pk)], saved_audience=str(elsewhere.pk)))
    errors = response.context["form"].errors
    assert "regions" in errors and "saved_audience" in errors and Campaign.objects.count() == 0


def test_a_saved_audience_or_the_audience_pages_expression_fills_the_form(city, client):
    client.force_login(city["manager"])
    saved = SavedAudience.objects.create(name="高价值", expression="high_value and not comm_silent", owner=city["manager"])
    saved.regions.set([city["chancheng"]])
    form = client.get(f"/campaigns/new/?saved={saved.pk}").context["form"]
    assert form.initial["audience"] == "high_value and not comm_silent" and form.initial["saved_audience"] == saved
    form = client.get("/campaigns/new/?expression=" + quote("sms_expert or night_active")).context["form"]
    assert form.initial["audience"] == "sms_expert or night_active"
    # Left empty, the audience is the saved one's.
    client.post("/campaigns/new/", draft_form(audience="", saved_audience=str(saved.pk)))
    campaign = Campaign.objects.get()
    assert (campaign.audience, campaign.saved_audience) == (saved.expression, saved)


def test_a_step_out_of_order_is_refused_with_a_message_and_changes_nothing(city, client):
    client.force_login(city["manager"])
    client.post("/campaigns/new/", draft_form())
    campaign = Campaign.objects.get()
    page = client.post(f"/campaigns/{campaign.id}/start/", follow=True).content.decode()
    campaign.refresh_from_db()
    assert campaign.status == "draft" and "only a campaign frozen can start" in page
    assert client.get(f"/campaigns/{campaign.id}/freeze/").status_code == 405  # a step is a POST
    assert client.post(f"/campaigns/{campaign.id}/launch/").status_code == 404


def test_sales_staff_see_campaigns_but_cannot_draft_or_move_them(city, client):
    client.force_login(city["manager"])
    client.post("/campaigns/new/", draft_form())
    campaign = Campaign.objects.get()
    client.force_login(city["sales"])
    assert "新建营销活动" not in client.get("/campaigns/").content.decode()
    assert f"/campaigns/{campaign.id}/freeze/" not in client.get(f"/campaigns/{campaign.id}/").content.decode()
    assert client.get("/campaigns/new/").status_code == 403
    assert client.post("/campaigns/new/", draft_form()).status_code == 403
    assert client.post(f"/campaigns/{campaign.id}/freeze/").status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == "draft" and Campaign.objects.count() == 1


def test_a_campaign_of_another_district_cannot_be_moved(city, client):
    shunde_manager = staff_user(StaffProfile.Role.ADMIN, city["shunde"], username="cm-shunde")
    client.force_login(shunde_manager)
    client.post("/campaigns/new/", draft_form(regions=[str(city["shunde"].pk)], audience="high_value"))
    campaign = Campaign.objects.get()
    client.force_login(city["manager"])
    assert client.post(f"/campaigns/{campaign.id}/freeze/").status_code == 404
    campaign.refresh_from_db()
    assert campaign.status == "draft"


def test_freezing_an_audience_with_nobody_eligible_is_refused_and_leaves_a_draft(city, client):
    client.force_login(city["manager"])
    # Holders of the 5G plan only, for a 5G-plan campaign: the contact policy leaves out every one of them.
    client.post("/campaigns/new/", draft_form(audience='holds("5g_plan")'))
    campaign = Campaign.objects.get()
    page = client.post(f"/campaigns/{campaign.id}/freeze/", follow=True).content.decode()
    campaign.refresh_from_db()
    assert campaign.status == "draft" and campaign.seed is None
    assert "nobody to target" in page and "已订购该产品" in page
    response = client.post(f"/api/v1/campaigns/{campaign.id}/freeze/")
    assert response.status_code == 400 and "nobody to target" in str(response.json())
