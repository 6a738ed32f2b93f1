"""Customer value: the score and tiers of the value stage, and the revenue audiences, campaigns and segments add up."""

from datetime import date

import duckdb
import numpy as np
import pytest
from django.test import Client

from campaigns.models import Campaign
from campaigns.services.campaigns import freeze_campaign, targets_path
from tagging.models import Product, Region, SegmentModel, StaffProfile
from tagging.services.audiences import preview_audience, profile_audience
from tagging.stages import snapshot_dir
from tagging.value import fit, score, tier

from .factories import staff_user

pytestmark = pytest.mark.django_db(transaction=True)


def q(sql: str) -> list[tuple]:
    return duckdb.connect().execute(sql).fetchall()


def test_the_score_ranks_by_spend_first_and_the_tiers_cut_the_headcount():
    rng = np.random.default_rng(3)
    values = np.column_stack([rng.lognormal(3.8, 0.7, 20_000), rng.integers(0, 200, 20_000),
                              rng.lognormal(0, 0.3, 20_000), rng.integers(0, 4, 20_000)])
    scale = fit(values, shares=(0.2, 0.3))
    scores = score(values, scale.percentiles)
    tiers = tier(scores, scale.tier_starts)
    assert 0 <= scores.min() and scores.max() <= 100
    assert abs((tiers == "high").mean() - 0.2) < 0.01 and abs((tiers == "mid").mean() - 0.3) < 0.01
    # Spend weighs most: the top spender with the least of the rest outranks the least spender with the most of it.
    top_spend = np.array([[values[:, 0].max(), 0, values[:, 2].min(), 0]])
    least_spend = np.array([[values[:, 0].min(), 199, values[:, 2].max(), 3]])
    assert score(top_spend, scale.percentiles)[0] > score(least_spend, scale.percentiles)[0]
    # A minority brings most of the revenue: the high tier's share of spend is well above its headcount's.
    assert values[tiers == "high", 0].sum() / values[:, 0].sum() > 0.4


def features_and_value(run) -> str:
    folder = snapshot_dir(run.id)
    return (f"(SELECT * FROM read_parquet('{folder}/features/*.parquet') f "
            f"JOIN read_parquet('{folder}/value/*.parquet') v USING (subscriber_id))")


def test_every_active_line_gets_a_tier_and_audiences_show_the_revenue_at_stake(published_city):
    run = published_city
    table = features_and_value(run)
    (active, high, mid, scored_inactive, revenue_mismatch, high_revenue, revenue) = q(f"""
        SELECT count(*) FILTER (WHERE status = 'active'), count(*) FILTER (WHERE value_tier = 'high'),
               count(*) FILTER (WHERE value_tier = 'mid'),
               count(*) FILTER (WHERE status <> 'active' AND (value_tier IS NOT NULL OR monthly_revenue <> 0)),
               count(*) FILTER (WHERE status = 'active' AND abs(monthly_revenue - arpu_30d) > 1e-6),
               sum(monthly_revenue) FILTER (WHERE value_tier = 'high'), sum(monthly_revenue) FROM {table}""")[0]
    assert scored_inactive == 0 and revenue_mismatch == 0
    assert abs(high / active - 0.2) < 0.03 and abs(mid / active - 0.3) < 0.03
    assert high_revenue / revenue > 0.35  # the high fifth brings far more than a fifth of the revenue

    admin = staff_user(StaffProfile.Role.ADMIN, *Region.objects.all(), username="value_analyst")
    preview = preview_audience(expression="value_tier_high", user=admin)
    assert preview["count"] == high
    assert preview["monthly_revenue"] == round(high_revenue)
    assert preview["revenue_share"] == pytest.approx(high_revenue / revenue, abs=1e-4)
    assert profile_audience(expression="value_tier_high", user=admin)["monthly_revenue"] == round(high_revenue)
    # An audience of nobody is worth nothing; everyone is worth the districts' revenue.
    assert preview_audience(expression="value_tier_high and value_tier_low", user=admin)["monthly_revenue"] == 0
    assert preview_audience(expression="value_tier_high or not value_tier_high", user=admin)["revenue_share"] == pytest.approx(1.0)


def test_a_sales_user_sees_the_revenue_suppressed_and_rounded_with_the_count(published_city):
    chancheng = Region.objects.get(code="440604")
    sales = staff_user(StaffProfile.Role.SALES, chancheng, username="value_sales")
    assert preview_audience(expression="value_tier_high", user=sales)["monthly_revenue"] is not None  # not narrowed
    narrowed = preview_audience(expression='value_tier_high and area("禅城区")', user=sales)
    exact = preview_audience(expression='value_tier_high and area("禅城区")',
                             user=staff_user(StaffProfile.Role.ADMIN, chancheng, username="value_admin"))
    assert narrowed["suppressed_below"] and exact["suppressed_below"] is None
    assert narrowed["monthly_revenue"] == round(float(f"{exact['monthly_revenue']:.2g}"))
    tiny = preview_audience(expression='value_tier_high and value_tier_low and area("禅城区")', user=sales)
    assert isinstance(tiny["count"], str) and tiny["monthly_revenue"] is None and tiny["revenue_share"] is None


def test_a_frozen_campaign_records_its_targets_revenue_and_the_segment_table_its_share(published_city):
    chancheng = Region.objects.get(code="440604")
    manager = staff_user(StaffProfile.Role.ADMIN, chancheng, username="value_cm")
    campaign = Campaign.objects.create(
        name="高价值维系", product=Product.objects.get(code="5g_plan"), audience="value_tier_high",
        channel=Campaign.Channel.OUTBOUND_CALL, start_date=date(2026, 11, 1), end_date=date(2026, 11, 30), owner=manager)
    campaign.regions.set([chancheng])
    campaign = freeze_campaign(campaign=campaign, user=manager, seed=5)
    table = features_and_value(published_city)
    targets, districts = q(f"""
        SELECT sum(monthly_revenue) FILTER (WHERE subscriber_id IN (SELECT subscriber_id
                   FROM read_parquet('{targets_path(campaign)}') WHERE "group" = 'target')),
               sum(monthly_revenue) FILTER (WHERE region_code = '440604') FROM {table}""")[0]
    assert campaign.counts["monthly_revenue"] == round(targets) > 0
    assert campaign.counts["revenue_share"] == pytest.approx(targets / districts, abs=1e-4)
    page = Client()
    page.force_login(manager)
    html = page.get(f"/campaigns/{campaign.id}/").content.decode()
    assert f"¥{round(targets)}" in html.replace(",", "")

    # The segment table: each segment's and tier's headcount share beside its revenue share.
    admin = staff_user(StaffProfile.Role.ADMIN, *Region.objects.all(), username="value_admin_all")
    page.force_login(admin)
    model = SegmentModel.objects.get(run=published_city)
    html = page.get(f"/admin/tagging/segmentmodel/{model.id}/change/").content.decode()
    high_share = q(f"SELECT sum(monthly_revenue) FILTER (WHERE value_tier = 'high') / sum(monthly_revenue) FROM {table}")[0][0]
    assert "revenue share" in html and "value_tier_high" in html and f"{high_share:.1%}" in html, html[html.find("segment_table") - 200:][:3000]
