"""The micro-area map in a real browser: Debian's Chromium driven by Playwright, against a live server."""

from datetime import date

import pytest

from campaigns.models import Campaign
from campaigns.services.campaigns import freeze_campaign
from tagging.models import Product, Region, StaffProfile

from .browser import LANGUAGES, chromium_page, log_in, require_chromium, screenshot
from .factories import staff_user

require_chromium()

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sales_user_with_a_snapshot(published_city):
    chancheng = Region.objects.get(code="440604")
    manager = staff_user(StaffProfile.Role.ADMIN, chancheng, username="map_manager")
    campaign = Campaign.objects.create(name="5G升级", product=Product.objects.get(code="5g_plan"), audience="five_g_potential",
                                       channel=Campaign.Channel.OUTBOUND_CALL, start_date=date(2026, 11, 1),
                                       end_date=date(2026, 11, 30), owner=manager)
    campaign.regions.set([chancheng])
    freeze_campaign(campaign=campaign, user=manager, seed=1)
    return staff_user(StaffProfile.Role.SALES, chancheng, username="map_sales")


WORDS = {
    "zh-hans": {"penetration": "产品渗透率", "panel": ["居住用户", "已发展", "终端结构"], "targets": "活动目标"},
    "en": {"penetration": "Product penetration", "panel": ["Living here", "Developed", "Terminal mix"], "targets": "Campaign targets"},
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_sales_user_browses_the_map_switches_metric_and_opens_a_hex(sales_user_with_a_snapshot, live_server, settings,
                                                                      language):
    words = WORDS[language]
    settings.AREA_MIN_COUNT = 1  # a small city: show every hex so that the one clicked has numbers
    problems = []
    campaign = Campaign.objects.get().id  # the ORM is not for inside Playwright's event loop
    with chromium_page(problems, language) as page:
        log_in(page, live_server.url, "map_sales", "/map/")
        page.wait_for_selector("path.hex", state="attached")  # hexes outside the view are drawn empty
        assert int(page.get_attribute("#map", "data-hexes")) == page.locator("path.hex").count() > 0
        assert "禅城区" in page.inner_text("#areas")
        assert page.locator("path.area").count() >= 1  # the district outline

        page.select_option("#metric", "penetration")
        page.wait_for_function("document.getElementById('map').dataset.metric === 'penetration'")
        assert words["penetration"] in page.inner_text("#legend")
        assert not page.is_disabled("#product")

        in_view = page.locator("path.hex:not([d='M0 0'])")
        in_view.nth(in_view.count() // 2).click()
        page.wait_for_selector("#panel-title")
        panel = page.inner_text("#panel-body")
        assert all(word in panel for word in words["panel"])
        assert page.get_attribute("#export-targets", "href").startswith("/api/v1/hexes/")
        shot = screenshot(page, f"map-{language}.png")

        # Where a campaign's targets live, and the district's panel with its list to export.
        assert page.is_disabled("#campaign")
        page.select_option("#metric", "campaign_targets")
        page.wait_for_function("document.getElementById('map').dataset.metric === 'campaign_targets'")
        assert words["targets"] in page.inner_text("#legend") and not page.is_disabled("#campaign")
        page.click("#areas li")
        page.wait_for_selector("#campaign-targets")
        assert int(page.inner_text("#campaign-targets").replace(",", "")) > 0
        assert page.get_attribute("#export-campaign-targets", "href").startswith("/api/v1/campaigns/")
        screenshot(page, f"map-campaign-{language}.png")
        # The campaign's report links to this view; the map opens on it.
        page.goto(f"{live_server.url}/campaigns/{campaign}/")
        page.click("#on-the-map")
        page.wait_for_function("document.getElementById('map').dataset.metric === 'campaign_targets'")
        assert page.input_value("#metric") == "campaign_targets" and not page.is_disabled("#campaign")
        # A link naming a campaign the user may not see opens the default view, not another campaign's.
        page.goto(f"{live_server.url}/map/?metric=campaign_targets&campaign=999999")
        page.wait_for_function("document.getElementById('map').dataset.metric === 'subscribers'")
    assert problems == []
    assert shot.stat().st_size > 10_000
