"""Production by default (issue 17, item 7): sign-in lockouts keyed by user and address, rotated tokens, rates,
idle sessions, passwords, the audit log an analyst reads, a quiet health check and proxy headers believed only
when declared."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from tagging.models import AuditEvent, Region, StaffProfile
from tagging.services.accounts import ROLE_GROUP_NAMES

from .factories import RegionFactory, staff_user

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
HERE, THERE = "127.0.0.2", "127.0.0.3"  # two callers' addresses, as the web server sees them


@pytest.fixture
def people():
    chancheng = RegionFactory(code="440604", name="禅城区")
    return {"field": staff_user(StaffProfile.Role.FIELD, chancheng, username="field_chancheng"),
            "colleague": staff_user(StaffProfile.Role.FIELD, chancheng, username="field_colleague"),
            "analyst": staff_user(StaffProfile.Role.ADMIN, chancheng, username="analyst")}


def sign_in(client, username: str, password: str, address: str):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_repeated_failures_lock_out_that_user_from_that_address_only(people, client, settings):
    answers = [sign_in(client, "field_chancheng", "wrong-password-1", HERE).status_code
               for _ in range(settings.LOGIN_FAILURE_LIMIT)]
    assert answers == [200] * (settings.LOGIN_FAILURE_LIMIT - 1) + [429]  # the form again, then the lockout
    locked = sign_in(client, "field_chancheng", "pass-word-123", HERE)  # right password, too late
    assert locked.status_code == 429 and "请 15 分钟后再试" in locked.content.decode()
    # Nobody can lock a colleague out from elsewhere: the same user from another address, and another user from
    # the locked-out address, sign in.
    assert sign_in(client, "field_chancheng", "pass-word-123", THERE).status_code == 302
    client.logout()
    assert sign_in(client, "field_colleague", "pass-word-123", HERE).status_code == 302
    # The token endpoint shares the lockout, in JSON.
    api = APIClient()
    token = api.post("/api/v1/auth/token/", {"username": "field_chancheng", "password": "pass-word-123"}, REMOTE_ADDR=HERE)
    assert token.status_code == 429 and "分钟后再试" in token.json()["detail"]
    kinds = list(AuditEvent.objects.filter(username="field_chancheng").values_list("kind", flat=True))
    assert kinds.count("sign_in_failed") >= settings.LOGIN_FAILURE_LIMIT and "locked_out" in kinds and "sign_in" in kinds
    failed = AuditEvent.objects.filter(kind="sign_in_failed").first()
    assert failed.address == HERE and "password" not in str(failed.detail)


def test_signing_in_for_a_token_rotates_it(people):
    api = APIClient()
    first = api.post("/api/v1/auth/token/", {"username": "field_chancheng", "password": "pass-word-123"}).json()["token"]
    second = api.post("/api/v1/auth/token/", {"username": "field_chancheng", "password": "pass-word-123"}).json()["token"]
    assert first != second
    api.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    assert api.get("/api/v1/regions/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION=f"Token {second}")
    assert api.get("/api/v1/regions/").status_code == 200
    assert AuditEvent.objects.filter(kind="token_issued", user=people["field"]).count() == 2


def test_sign_in_and_heavy_questions_are_rated(people, monkeypatch):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "sign_in", "3/min")
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "preview", "2/min")
    api = APIClient()
    answers = [api.post("/api/v1/auth/token/", {"username": "nobody", "password": "x"}, REMOTE_ADDR=HERE).status_code
               for _ in range(4)]
    assert answers == [400, 400, 400, 429]
    assert api.post("/api/v1/auth/token/", {"username": "nobody", "password": "x"}, REMOTE_ADDR=THERE).status_code == 400
    api.force_authenticate(people["analyst"])
    previews = [api.post("/api/v1/audiences/preview", {"expression": "high_value"}, format="json") for _ in range(3)]
    assert [p.status_code for p in previews][-1] == 429 and "Retry-After" in previews[-1].headers
    other = APIClient()
    other.force_authenticate(people["colleague"])  # rates are per user
    assert other.post("/api/v1/audiences/preview", {"expression": "high_value"}, format="json").status_code != 429


def test_sessions_end_when_idle_and_passwords_are_operator_grade(people, client, settings):
    assert sign_in(client, "field_chancheng", "pass-word-123", HERE).status_code == 302
    client.get("/")
    assert client.session.get_expiry_age() == settings.SESSION_IDLE_MINUTES * 60 == 1800
    assert settings.SESSION_SAVE_EVERY_REQUEST  # each request moves the end on: it is idle time
    for weak in ["short-pw-1", "12345678901234", "password123456"]:
        with pytest.raises(ValidationError):
            validate_password(weak)
    validate_password("锦绣-Foshan-2026-营销")


def test_role_changes_are_audited_and_analysts_read_the_log(people, client, admin_user):
    from tagging.services.accounts import assign_role

    shunde = RegionFactory(code="440606", name="顺德区")
    assign_role(user=people["field"], role=StaffProfile.Role.SALES, region_codes=["440606"], actor=admin_user)
    event = AuditEvent.objects.get(kind="role_changed", user=people["field"], actor=admin_user)
    assert event.detail == {"from": {"role": "field", "regions": ["440604"]}, "to": {"role": "sales", "regions": ["440606"]}}
    # Through admin's user form too, where the role's permission group now follows the role.
    client.force_login(admin_user)
    user = people["colleague"]
    profile = user.staff
    form = {"username": user.username, "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00", "is_active": "on",
            "staff-TOTAL_FORMS": "1", "staff-INITIAL_FORMS": "1", "staff-MIN_NUM_FORMS": "0", "staff-MAX_NUM_FORMS": "1",
            "staff-0-id": str(profile.id), "staff-0-user": str(user.id), "staff-0-role": "admin",
            "staff-0-regions": [str(shunde.id)]}
    answer = client.post(f"/admin/auth/user/{user.id}/change/", form)
    assert answer.status_code == 302, answer.content.decode()[:2000]
    user.refresh_from_db()
    assert user.has_perm("tagging.add_tagdefinition") and user.groups.get().name == ROLE_GROUP_NAMES[StaffProfile.Role.ADMIN]
    assert AuditEvent.objects.filter(kind="role_changed", user=user, actor=admin_user).exists()
    client.force_login(people["analyst"])
    log = client.get("/admin/tagging/auditevent/")
    assert log.status_code == 200 and "field_chancheng" in log.content.decode()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()
    client.force_login(staff_user(StaffProfile.Role.SALES, Region.objects.get(code="440604"), username="sales"))
    assert client.get("/admin/tagging/auditevent/").status_code in (302, 403)


def test_healthz_tells_anonymous_callers_only_what_passes_and_writes_nothing(people, client, settings):
    lake = Path(settings.LAKE_DIR)
    lake.mkdir(parents=True, exist_ok=True)
    before = {p: p.stat().st_mtime_ns for p in [lake, *lake.iterdir()]}
    body = client.get("/healthz").json()
    assert body == {"status": "ok", "checks": {"database": {"ok": True}, "broker": {"ok": True}, "lake": {"ok": True}}}
    assert str(lake) not in str(body)
    client.force_login(people["analyst"])
    assert client.get("/healthz").json()["checks"]["lake"]["path"] == str(lake)
    assert {p: p.stat().st_mtime_ns for p in [lake, *lake.iterdir()]} == before


@pytest.mark.parametrize(("declared", "believed"), [(None, "None"), ("1", "('HTTP_X_FORWARDED_PROTO', 'https')")])
def test_the_forwarded_protocol_is_believed_only_when_a_proxy_is_declared(tmp_path, declared, believed):
    env = {k: v for k, v in os.environ.items() if k not in {"PROXY_SETS_FORWARDED_HEADERS", "DATABASE_URL", "REDIS_URL"}}
    env.update(DEBUG="0", SECRET_KEY="k" * 30 + "0123456789abcdefghijklmnopqrstuvwxyz", PSEUDONYM_KEY="p" * 40,
               ALLOWED_HOSTS="marketing.example.internal", DATA_DIR=str(tmp_path))
    if declared:
        env["PROXY_SETS_FORWARDED_HEADERS"] = declared
    shown = subprocess.run([sys.executable, "manage.py", "shell", "-c",
                            "from django.conf import settings; print(getattr(settings, 'SECURE_PROXY_SSL_HEADER', None))"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
    assert shown.stdout.strip().splitlines()[-1] == believed, shown.stderr
