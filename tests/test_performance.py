"""Campaign performance over time: every campaign against its control with cost and return, pooled by month, product,
channel, district and targeting; the page and the API, scoped to the user's districts; bad filters refused."""

from datetime import date, datetime, time
from decimal import Decimal

import duckdb
import pytest
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns.evaluation import Group
from campaigns.models import Campaign
from campaigns.performance import CampaignResult, economics, pooled, trend
from campaigns.selectors import campaign_evaluation
from campaigns.services.campaigns import create_campaign, freeze_campaign, move_campaign, targets_path
from campaigns.services.outcomes import record_outcomes
from tagging.lake.store import read_sql
from tagging.models import Product, Region, StaffProfile
from tagging.services.snapshots import pinned_paths

from .factories import staff_user


def result(campaign: int, month: str, target: tuple[int, int], control: tuple[int, int], *, purpose: str = "sale",
           model: bool = False, contacts: int = 100, cost: float = 1.0, value: float | None = 100.0) -> CampaignResult:
    return CampaignResult(campaign, f"c{campaign}", month, purpose, "5g_plan" if purpose == "sale" else None, "sms",
                          "random", model, ("440604",), Group(*target), Group(*control), contacts, cost, value)


def test_the_return_counts_only_what_the_campaign_added_over_its_control():
    sale = economics(result(1, "2026-10", (1000, 80), (1000, 50), contacts=2000, cost=0.5, value=120))
    assert sale["cost"] == 1000 and sale["incremental_successes"] == pytest.approx(30)
    assert sale["return"] == pytest.approx(3600) and sale["return_on_cost"] == pytest.approx(2.6)
    kept = economics(result(2, "2026-10", (1000, 20), (500, 20), purpose="retention", contacts=1000, cost=2, value=600))
    assert kept["incremental_successes"] == pytest.approx(20)  # (4% - 2%) x 1,000 leavers kept
    assert kept["return"] == pytest.approx(12_000) and kept["return_on_cost"] == pytest.approx(5.0)
    worse = economics(result(3, "2026-10", (1000, 40), (1000, 50), value=None))
    assert worse["incremental_successes"] == pytest.approx(-10) and worse["return"] is None


def test_pooling_adds_the_counts_and_never_mixes_sale_with_retention():
    results = [result(1, "2026-09", (1000, 80), (1000, 50)), result(2, "2026-10", (3000, 300), (1000, 60), model=True),
               result(3, "2026-10", (500, 20), (500, 10)), result(4, "2026-10", (800, 16), (800, 32), purpose="retention")]
    months = {(row["purpose"], row["key"]): row for row in pooled(results, lambda r: r.month)}
    october = months[("sale", "2026-10")]
    assert october["campaigns"] == 2 and october["target"] == {"base": 3500, "successes": 320}
    assert october["control"] == {"base": 1500, "successes": 70}
    assert october["target_rate"] == pytest.approx(320 / 3500) and october["lift_low"] < october["lift"] < october["lift_high"]
    assert months[("retention", "2026-10")]["target"] == {"base": 800, "successes": 16}
    lines = {row["month"]: row for row in trend(results)}
    assert lines["2026-10"]["model_targeted"]["target_rate"] == pytest.approx(0.1)
    assert lines["2026-10"]["untargeted"]["target_rate"] == pytest.approx(0.04)
    assert lines["2026-09"]["model_targeted"] is None


# --- on the small city ------------------------------------------------------------------------------------


def _campaign(manager, name, audience, *, start, channel="sms", **fields) -> Campaign:
    campaign = create_campaign(
        owner=manager, name=name, product=fields.pop("product", Product.objects.get(code="5g_plan")), audience=audience,
        channel=channel, start_date=start, end_date=start.replace(day=28), regions=["440604", "440606"],
        control_share=Decimal("0.3"), control_kind=fields.pop("control_kind", Campaign.ControlKind.RANDOM), **fields)
    campaign = freeze_campaign(campaign=campaign, user=manager, seed=campaign.id)
    return move_campaign(campaign=campaign, step="start", user=manager)


def _report(campaign, run, manager, converted_every: int) -> None:
    """Field teams call every listed subscriber; one in `converted_every` of the targets converts, fewer of the others."""
    listed = duckdb.connect().sql(f"""SELECT s.msisdn::VARCHAR, t."group" FROM read_parquet('{targets_path(campaign)}') t
                            JOIN {read_sql("subscribers", pinned_paths(run.lake_batches)["subscribers"])} s USING (subscriber_id)
                            ORDER BY t.subscriber_id""").fetchall()
    called = timezone.make_aware(datetime.combine(campaign.start_date, time(10)))
    record_outcomes(campaign=campaign, user=manager, rows=[
        {"msisdn": m, "contacted_at": called.isoformat(), "channel": campaign.channel,
         "outcome": "converted" if i % (converted_every if group == "target" else 3 * converted_every) == 0 else "refused"}
        for i, (m, group) in enumerate(listed)])


@pytest.mark.django_db(transaction=True)
def test_the_performance_page_and_api_show_every_campaign_of_your_districts(published_city):
    chancheng, shunde = Region.objects.get(code="440604"), Region.objects.get(code="440606")
    manager = staff_user(StaffProfile.Role.ADMIN, chancheng, shunde, username="perf_manager")
    untargeted = _campaign(manager, "5G 短信", "five_g_handset_no_plan", start=date(2026, 10, 1))
    targeted = _campaign(manager, "5G 外呼", "five_g_handset_no_plan", start=date(2026, 11, 2),
                         channel=Campaign.Channel.OUTBOUND_CALL, cost_per_contact="2.5", value_per_conversion="300")
    # An audience ranked by a model's deciles counts as model-targeted. The small city's one snapshot fitted no model
    # to freeze such an audience from, so the frozen campaign's audience is rewritten as if it had been.
    Campaign.objects.filter(pk=targeted.pk).update(audience="propensity_5g_plan >= 8 or five_g_handset_no_plan")
    retention = _campaign(manager, "维系", "high_value", start=date(2026, 11, 3), product=None, purpose="retention",
                          control_kind=Campaign.ControlKind.HOLDOUT, offer="赠送流量")
    for campaign, every in ((untargeted, 5), (targeted, 3)):
        _report(campaign, published_city, manager, every)

    api = APIClient()
    api.force_authenticate(manager)
    body = api.get("/api/v1/campaign-performance/").json()
    rows = {row["campaign"]: row for row in body["campaigns"]}
    assert set(rows) == {untargeted.id, targeted.id, retention.id} and body["total_campaigns"] == 3
    for campaign in (untargeted, targeted, retention):
        overall = campaign_evaluation(campaign=campaign, user=manager)["overall"]
        assert rows[campaign.id]["target"] == {"base": overall["target"]["base"], "successes": overall["target"]["successes"]}
        assert rows[campaign.id]["lift"] == overall["lift"]
    called = rows[targeted.id]
    assert called["model_targeted"] and not rows[untargeted.id]["model_targeted"]
    assert called["cost_per_contact"] == 2.5 and called["cost"] == pytest.approx(2.5 * called["contacts"])
    assert called["contacts"] == targeted.counts["targets"] + targeted.counts["control"]  # both groups were called
    assert called["return"] == pytest.approx(300 * called["incremental_successes"], abs=300)
    assert rows[untargeted.id]["cost_per_contact"] == 0.05  # the SMS channel's default
    assert rows[untargeted.id]["value_per_conversion"] == pytest.approx(
        float(Product.objects.get(code="5g_plan").monthly_fee_yuan) * 12)
    assert rows[retention.id]["contacts"] == retention.counts["targets"]  # nothing reported: the whole list sent
    months = {(row["purpose"], row["key"]): row for row in body["by_month"]}
    assert months[("sale", "2026-10")]["target"] == rows[untargeted.id]["target"]
    districts = {row["key"] for row in body["by_district"]}
    assert districts == {"440604", "440606"}
    trend_rows = {row["month"]: row for row in body["trend"]}
    assert trend_rows["2026-11"]["model_targeted"]["campaigns"] == 1 and trend_rows["2026-11"]["untargeted"] is None

    # A field team of Shunde sees the same campaigns, in Shunde only; one of another district none of them.
    shunde_field = staff_user(StaffProfile.Role.FIELD, shunde, username="perf_shunde")
    api.force_authenticate(shunde_field)
    theirs = api.get("/api/v1/campaign-performance/").json()
    assert {row["key"] for row in theirs["by_district"]} == {"440606"}
    assert all(row["districts"] == ["440606"] for row in theirs["campaigns"])
    elsewhere = staff_user(StaffProfile.Role.FIELD, Region.objects.get(code="440605"), username="perf_nanhai")
    api.force_authenticate(elsewhere)
    assert api.get("/api/v1/campaign-performance/").json()["campaigns"] == []

    # Filters, and bad ones refused naming what is wrong.
    api.force_authenticate(manager)
    november = api.get("/api/v1/campaign-performance/?since=2026-11-01&purpose=sale").json()
    assert [row["campaign"] for row in november["campaigns"]] == [targeted.id]
    assert "since" in api.get("/api/v1/campaign-performance/?since=yesterday").json()
    assert api.get("/api/v1/campaign-performance/?since=2026-11-01&until=2026-10-01").status_code == 400
    assert "purpose" in api.get("/api/v1/campaign-performance/?purpose=upsell").json()

    # A request never evaluates more than PERFORMANCE_MAX_CAMPAIGNS campaigns (each is a lake query): the latest.
    with override_settings(PERFORMANCE_MAX_CAMPAIGNS=1):
        capped = api.get("/api/v1/campaign-performance/").json()
    assert capped["total_campaigns"] == 3 and capped["shown"] == 1
    assert [row["campaign"] for row in capped["campaigns"]] == [retention.id]

    page = Client()
    page.force_login(manager)
    html = page.get("/campaigns/performance/").content.decode()
    assert 'id="trend-chart"' in html and "5G 外呼" in html and 'id="by-channel"' in html
    assert page.get("/campaigns/performance/?since=garbage").status_code == 400
