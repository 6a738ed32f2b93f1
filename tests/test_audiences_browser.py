"""The audience page in a real browser: a sales user picks tags and reads the count and who they are, a
bad expression is shown with a caret under its place, an analyst saves the audience for campaigns and
makes a campaign of it."""

import pytest

from campaigns.models import Campaign, SavedAudience
from tagging.models import Region, Snapshot, StaffProfile, TagDefinition
from tagging.services.audiences import preview_audience
from tagging.services.snapshots import start_snapshot_run
from tagging.services.tags import save_tag_definition

from .browser import LANGUAGES, chromium_page, log_in, require_chromium, screenshot
from .conftest import SMALL_CITY
from .factories import staff_user

require_chromium()

pytestmark = pytest.mark.django_db(transaction=True)


WORDS = {
    "zh-hans": {"product": "流量包", "draft_saved": "草稿已保存", "freeze": "冻结", "start": "启动", "frozen": "已冻结",
                "then": "{date}（{count}）"},
    "en": {"product": "Data pack", "draft_saved": "Draft saved", "freeze": "Freeze", "start": "Start", "frozen": "Frozen",
           "then": "{date} ({count})"},
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_counting_and_saving_an_audience_in_the_browser(published_city, run_to_end, live_server, language):
    words = WORDS[language]
    first = Snapshot.objects.get()
    # need_data is loosened and the snapshot run again: the audience grows from one snapshot to the next.
    tag = TagDefinition.objects.get(code="need_data")
    tag.expression = "data_mb_30d >= 4096 and voice_minutes_30d < 300"
    save_tag_definition(tag=tag)
    run_to_end(start_snapshot_run(as_of=SMALL_CITY.end_date, window_days=SMALL_CITY.days, partition_size=600))
    chancheng = Region.objects.get(code="440604")
    sales = staff_user(StaffProfile.Role.SALES, chancheng, username="audience_sales")
    staff_user(StaffProfile.Role.ADMIN, chancheng, username="audience_analyst")
    # Expected counts from the service, before the browser runs (the ORM is not for inside its event loop).
    expected = {text: preview_audience(expression=text, user=sales)["count"]
                for text in ["comm_active", "comm_active and need_data"]}
    before = preview_audience(expression="comm_active and need_data", user=sales, snapshot=first)["count"]
    assert expected["comm_active and need_data"] > before
    problems = []
    with chromium_page(problems, language) as page:
        log_in(page, live_server.url, "audience_sales", "/audiences/")
        page.click(".chip[data-code=comm_active]")
        page.wait_for_function(f"document.getElementById('audience-count').textContent === '{expected['comm_active']:,}'")
        page.click(".chip[data-code=need_data]")  # joined with "and"
        assert page.input_value("#expression") == "comm_active and need_data"
        page.wait_for_function(
            f"document.getElementById('audience-count').textContent === '{expected['comm_active and need_data']:,}'")
        regions = page.inner_text("#audience-regions")
        assert "禅城区" in regions and "南海区" not in regions  # only the user's district
        assert "expression=comm_active%20and%20need_data" in page.url  # the address keeps the audience
        growth = expected["comm_active and need_data"] - before
        page.wait_for_function(f"document.getElementById('audience-change').textContent.includes('+{growth:,}')")
        assert words["then"].format(date=first.as_of_date, count=f"{before:,}") in page.inner_text("#audience-change")
        page.wait_for_selector("#audience-profile:not([hidden]) #profile-over tbody tr")
        first = page.locator("#profile-over tbody tr").first
        assert int(first.locator("td").last.inner_text().replace(",", "")) > 100  # the most over-represented tag, by its TGI
        assert first.locator("a").get_attribute("href").startswith("/tags/")
        screenshot(page, f"audiences-{language}.png")

        page.fill("#expression", "comm_active and (need_data or")
        page.wait_for_selector("#audience-error:not([hidden])")
        error = page.inner_text("#audience-error")
        assert "column 17" in error and "never closed" in error
        assert error.splitlines()[-1] == " " * 16 + "^"  # under the unclosed bracket
        assert page.locator("#save-audience").count() == 0  # sales staff count; analysts save

        page.context.clear_cookies()  # the analyst, in the same browser
        log_in(page, live_server.url, "audience_analyst", "/audiences/?expression=comm_active%20and%20need_data")
        page.wait_for_selector("#audience-result:not([hidden])")
        page.fill("#audience-name", "禅城活跃流量")
        page.click("#save-audience button")
        page.wait_for_function("document.getElementById('saved-audiences').textContent.includes('禅城活跃流量')")
        page.click(".chip[data-code=high_value]")  # after the expression the address gave
        assert page.input_value("#expression") == "comm_active and need_data and high_value"
        page.click("#expression", position={"x": 3, "y": 10})  # the cursor before the first tag
        page.keyboard.press("Home")
        page.click(".chip[data-code=night_active]")
        assert page.input_value("#expression") == "night_active and comm_active and need_data and high_value"

        # The analyst turns the audience into a campaign and freezes it, all in pages.
        page.fill("#expression", "comm_active and need_data")
        page.wait_for_function("document.getElementById('new-campaign').href.endsWith('comm_active%20and%20need_data')")
        page.click("#new-campaign")
        page.wait_for_selector("form.campaign-form")
        assert page.input_value("textarea[name=audience]") == "comm_active and need_data"
        page.fill("input[name=name]", "禅城夜间流量包")
        page.select_option("select[name=product]", label=words["product"])
        page.click("form.campaign-form button[type=submit]")
        page.wait_for_selector("#steps")
        assert words["draft_saved"] in page.inner_text(".messages")
        page.click(f"#steps button:has-text('{words['freeze']}')")
        page.wait_for_selector(f"#steps button:has-text('{words['start']}')")
        assert words["frozen"] in page.inner_text(".messages")
        screenshot(page, f"campaign-frozen-{language}.png")
    # The deliberately bad expression was answered 400, which Chromium reports; nothing else may fail.
    assert [p for p in problems if "status of 400" not in p] == []
    assert sum("status of 400" in p for p in problems) >= 1
    campaign = Campaign.objects.get(name="禅城夜间流量包")
    assert campaign.status == "frozen" and campaign.product.code == "data_pack" and campaign.owner.username == "audience_analyst"
    saved = SavedAudience.objects.get(name="禅城活跃流量")
    assert saved.expression == "comm_active and need_data" and list(saved.regions.values_list("code", flat=True)) == ["440604"]
