"""The micro-area map in a real browser: Debian's Chromium driven by Playwright, against a live server.

Skipped with a message when Chromium is not installed, unless REQUIRE_BROWSER is set (`.ci/run` installs
Chromium and sets it, so CI never passes by skipping).
"""

import os
import shutil
from pathlib import Path

from datetime import date

import pytest

from campaigns.models import Campaign
from campaigns.services.campaigns import freeze_campaign
from tagging.models import Product, Region, StaffProfile

from .conftest import ROOT
from .factories import staff_user

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("BROWSER_SCREENSHOTS", ROOT / "var" / "screenshots"))

if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
    if os.environ.get("REQUIRE_BROWSER"):
        raise RuntimeError(f"REQUIRE_BROWSER is set but {CHROMIUM} is missing: apt-get install chromium")
    pytest.skip(f"browser test skipped: {CHROMIUM} is not installed (apt-get install chromium; .ci/run does)",
                allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402  (only where a browser can run)

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


def test_a_sales_user_browses_the_map_switches_metric_and_opens_a_hex(sales_user_with_a_snapshot, live_server, settings):
    settings.AREA_MIN_COUNT = 1  # a small city: show every hex so that the one clicked has numbers
    problems = []
    campaign = Campaign.objects.get().id  # the ORM is not for inside Playwright's event loop
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda request: problems.append(f"{request.url}: {request.failure}"))
            page.goto(f"{live_server.url}/accounts/login/?next=/map/")
            page.fill("input[name=username]", "map_sales")
            page.fill("input[name=password]", "pass-word-123")
            page.click("button[type=submit]")
            page.wait_for_selector("path.hex", state="attached")  # hexes outside the view are drawn empty
            assert int(page.get_attribute("#map", "data-hexes")) == page.locator("path.hex").count() > 0
            assert "禅城区" in page.inner_text("#areas")
            assert page.locator("path.area").count() >= 1  # the district outline

            page.select_option("#metric", "penetration")
            page.wait_for_function("document.getElementById('map').dataset.metric === 'penetration'")
            assert "Product penetration" in page.inner_text("#legend")
            assert not page.is_disabled("#product")

            in_view = page.locator("path.hex:not([d='M0 0'])")
            in_view.nth(in_view.count() // 2).click()
            page.wait_for_selector("#panel-title")
            panel = page.inner_text("#panel-body")
            assert "Living here" in panel and "Developed" in panel and "Terminal mix" in panel
            assert page.get_attribute("#export-targets", "href").startswith("/api/v1/hexes/")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "map.png"))

            # Where a campaign's targets live, and the district's panel with its list to export.
            assert page.is_disabled("#campaign")
            page.select_option("#metric", "campaign_targets")
            page.wait_for_function("document.getElementById('map').dataset.metric === 'campaign_targets'")
            assert "Campaign targets" in page.inner_text("#legend") and not page.is_disabled("#campaign")
            page.click("#areas li")
            page.wait_for_selector("#campaign-targets")
            assert int(page.inner_text("#campaign-targets").replace(",", "")) > 0
            assert page.get_attribute("#export-campaign-targets", "href").startswith("/api/v1/campaigns/")
            page.screenshot(path=str(SCREENSHOTS / "map-campaign.png"))
            # The campaign's report links to this view; the map opens on it.
            page.goto(f"{live_server.url}/campaigns/{campaign}/")
            page.click("#on-the-map")
            page.wait_for_function("document.getElementById('map').dataset.metric === 'campaign_targets'")
            assert page.input_value("#metric") == "campaign_targets" and not page.is_disabled("#campaign")
            # A link naming a campaign the user may not see opens the default view, not another campaign's.
            page.goto(f"{live_server.url}/map/?metric=campaign_targets&campaign=999999")
            page.wait_for_function("document.getElementById('map').dataset.metric === 'subscribers'")
        finally:
            browser.close()
    assert problems == []
    assert (SCREENSHOTS / "map.png").stat().st_size > 10_000
