import datetime

import factory
from django.conf import settings
from django.contrib.auth import get_user_model

from tagging.models import Product, Region, Subscriber, Subscription
from tagging.privacy import pseudonym
from tagging.services.accounts import assign_role


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region
        django_get_or_create = ["code"]

    code = factory.Sequence(lambda n: f"9{n:05d}")
    name = factory.Sequence(lambda n: f"区{n}")
    name_en = factory.Sequence(lambda n: f"District {n}")
    level = Region.Level.DISTRICT


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        django_get_or_create = ["code"]

    code = factory.Sequence(lambda n: f"product_{n}")
    name = factory.Sequence(lambda n: f"产品{n}")
    name_en = factory.Sequence(lambda n: f"Product {n}")
    category = "plan"
    monthly_fee_yuan = 30


class SubscriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscriber

    id = factory.Sequence(lambda n: n + 1)
    msisdn = factory.Sequence(lambda n: f"138{n:08d}")
    pseudonym = factory.LazyAttribute(lambda s: pseudonym(s.msisdn, key=settings.PSEUDONYM_KEY))
    brand = Subscriber.Brand.EASYOWN
    plan = "4G飞享 38元"
    join_date = datetime.date(2020, 1, 1)
    birth_year = 1985
    gender = Subscriber.Gender.FEMALE
    region = factory.SubFactory(RegionFactory)


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    subscriber = factory.SubFactory(SubscriberFactory)
    product = factory.SubFactory(ProductFactory)
    start_date = datetime.date(2024, 1, 1)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pass-word-123")


def staff_user(role: str, *regions: Region, username: str | None = None):
    """A user with a role and regions, as admins set them up."""
    user = UserFactory(**({"username": username} if username else {}))
    assign_role(user=user, role=role, region_codes=[r.code for r in regions])
    return user
