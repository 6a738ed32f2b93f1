"""A schemathesis run over the OpenAPI schema: requests generated from it for every operation, signed in as
a campaign manager of two districts (with a published snapshot and a frozen campaign to aim at), and as a
field team, never get a server error."""

from datetime import date

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error

from campaigns.models import Campaign
from campaigns.services.campaigns import freeze_campaign
from tagging.models import Product, Region, StaffProfile

from .factories import staff_user

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 6  # per operation and user: every operation reached, odd values included, within a minute


@pytest.fixture
def published(published_city):
    districts = [Region.objects.get(code="440604"), Region.objects.get(code="440605")]
    manager = staff_user(StaffProfile.Role.ADMIN, *districts, username="st_cm")
    campaign = Campaign.objects.create(name="schema", product=Product.objects.get(code="5g_plan"), audience="high_value",
                                       channel="sms", start_date=date(2026, 11, 1), end_date=date(2026, 11, 30), owner=manager)
    campaign.regions.set(districts)
    freeze_campaign(campaign=campaign, user=manager, seed=1)
    return [manager, staff_user(StaffProfile.Role.FIELD, districts[0], username="st_field")]


def test_no_operation_gives_a_server_error(published):
    schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
    schema.app = get_wsgi_application()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    tried, statuses, unauthenticated = 0, {}, []
    for user in published:
        headers = {"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"}
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def call(case):
                response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
                statuses[response.status_code // 100] = statuses.get(response.status_code // 100, 0) + 1
                if response.status_code == 401:
                    unauthenticated.append(f"{case.method} {case.path}")

            call()
            tried += 1
    assert tried == 2 * len(operations)
    # The generated requests did reach the views: signed in, many answered, many refused as bad input.
    assert not unauthenticated and statuses.get(2, 0) > 100 and statuses.get(4, 0) > 50, statuses
