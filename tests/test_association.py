"""Product association: the LIFT matrix by hand and on a snapshot, holds("...") in audiences, and the seed
audience of a product's strongly associated holders."""

from urllib.parse import quote

import duckdb
import numpy as np
import pytest
from django.test import Client
from rest_framework.test import APIClient

from campaigns.association import association_rules, seed_audience
from tagging.expressions import ExpressionError
from tagging.lake import store
from tagging.models import Region, StaffProfile
from tagging.services.audiences import preview_audience

from .conftest import SMALL_CITY
from .factories import staff_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_support_confidence_and_lift_by_hand():
    # 100 subscribers; A held by 20, B by 25, both by 10; C by 50, with A by 10 (independent of A).
    holders = np.array([20, 25, 50])
    both = np.array([[20, 10, 10], [10, 25, 0], [10, 0, 50]])
    rules = {(r["from"], r["to"]): r for r in association_rules(["a", "b", "c"], 100, holders, both)}
    assert len(rules) == 6 and ("a", "a") not in rules
    assert rules["a", "b"]["support"] == 0.10 and rules["a", "b"]["confidence"] == 0.5 and rules["a", "b"]["lift"] == 2.0
    assert rules["b", "a"]["confidence"] == 0.4 and rules["b", "a"]["lift"] == pytest.approx(2.0)
    assert rules["a", "c"]["lift"] == pytest.approx(1.0) and rules["b", "c"]["lift"] == 0.0
    assert seed_audience("b", list(rules.values()), min_lift=1.2, min_support=0.01) == '(holds("a")) and not holds("b")'
    assert seed_audience("c", list(rules.values()), min_lift=1.2, min_support=0.01) is None
    assert association_rules(["a"], 0, np.array([0]), np.array([[0]])) == []


def test_the_matrix_of_a_snapshot_in_your_districts_and_its_seed_audiences(published_city):
    run = published_city
    user = staff_user(StaffProfile.Role.SALES, Region.objects.get(code="440604"), username="assoc")
    api = APIClient()
    api.force_authenticate(user)
    answer = api.get("/api/v1/product-association/")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    # Recounted from the lake's subscriptions: active subscribers of Chancheng holding each product on the day.
    held = duckdb.connect().execute(f"""
        SELECT p.product_code, count(DISTINCT subscriber_id) FROM {store.current_sql('subscriptions')} p
        JOIN {store.current_sql('subscribers')} s USING (subscriber_id)
        WHERE s.region_code = '440604' AND s.status = 'active' AND p.start_date <= DATE '{SMALL_CITY.end_date}'
          AND (p.end_date IS NULL OR p.end_date >= DATE '{SMALL_CITY.end_date}') GROUP BY 1""").fetchall()
    assert {p["code"]: p["holders"] for p in body["products"] if p["holders"]} == dict(held)
    rules = {(r["from"], r["to"]): r for r in body["rules"]}
    some = rules["broadband", "family_plan"]
    assert some["lift"] == pytest.approx(some["confidence"] / (some["to_holders"] / body["subscribers"]))

    # Each seed audience is a valid audience; its members hold an associated product and not the target.
    target, seed = next((code, text) for code, text in body["seed_audiences"].items() if text)
    count = preview_audience(expression=seed, user=user)["count"]
    lacking = preview_audience(expression=f'not holds("{target}")', user=user)["count"]
    holders = next(p["holders"] for p in body["products"] if p["code"] == target)
    assert 0 < count <= lacking and preview_audience(expression=f'holds("{target}")', user=user)["count"] >= holders

    # The page: the same matrix, each seed audience linked to the audience page; linked from the audience page.
    page = Client()
    page.force_login(user)
    html = page.get("/campaigns/association/").content.decode()
    assert 'id="lift-matrix"' in html and f"{some['lift']:.2f}" in html
    assert f'/audiences/?expression={quote(seed)}' in html.replace("&amp;", "&")
    assert 'id="association-link"' in page.get("/audiences/").content.decode()
    assert "/campaign-new" not in html and "New campaign" not in html  # sales staff count, they draft no campaigns

    with pytest.raises(ExpressionError, match='holds\\("5g_plam"\\): no product of that code; did you mean 5g_plan'):
        preview_audience(expression='holds("5g_plam")', user=user)
    assert run.status == "succeeded"
