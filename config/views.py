"""The home page, the health check and the sign-in lockout answer."""

import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import Count
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from tagging.models import IngestBatch, Region, Snapshot, SnapshotRun, Subscriber
from tagging.selectors import tag_library, usage_in_regions


@login_required
def home(request):
    regions = (
        Subscriber.objects.visible_to(request.user)
        .values("region__code", "region__name", "region__name_en")
        .annotate(subscribers=Count("id"))
        .order_by("region__code")
    )
    profile = getattr(request.user, "staff", None)
    snapshot = Snapshot.objects.current()
    context = {
        "profile": profile,
        "snapshot": snapshot,
        "usage": usage_in_regions(snapshot=snapshot, user=request.user) if snapshot else None,
        "regions": regions,
        "total": sum(r["subscribers"] for r in regions),
        "assigned": Region.objects.filter(staff__user=request.user) if profile else Region.objects.none(),
        "runs": SnapshotRun.objects.all()[:5] if request.user.has_perm("tagging.view_snapshotrun") else [],
        "batches": IngestBatch.objects.all()[:10] if request.user.has_perm("tagging.view_ingestbatch") else [],
        "tags": tag_library(user=request.user) if request.user.has_perm("tagging.view_tagdefinition") else [],
    }
    return render(request, "home.html", context)


def locked_out(request, original_response=None, credentials=None):
    """What a sign-in locked out by django-axes answers: 429, in JSON for the API, saying when to try again."""
    minutes = settings.LOGIN_LOCKOUT_MINUTES
    message = _("Too many failed sign-ins for this user from this address: try again in %(minutes)s minutes, "
                "or ask an administrator to unlock it") % {"minutes": minutes}
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=429, headers={"Retry-After": str(minutes * 60)})
    return HttpResponse(message, status=429, content_type="text/plain; charset=utf-8", headers={"Retry-After": str(minutes * 60)})


@never_cache
def healthz(request):
    """Database, broker (when configured) and lake: 200 when all answer, 503 naming what does not. Anonymous
    callers (load balancers) learn only which checks pass; staff signed in also see the details."""
    checks = {"database": _check_database(), "broker": _check_broker(), "lake": _check_lake()}
    healthy = all(c["ok"] for c in checks.values())
    if not (request.user.is_authenticated and request.user.is_staff):
        checks = {name: {"ok": check["ok"]} for name, check in checks.items()}
    return JsonResponse({"status": "ok" if healthy else "unhealthy", "checks": checks}, status=200 if healthy else 503)


def _check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "engine": connection.vendor}
    except Exception as exc:  # the point is to report any failure, whatever it is
        return {"ok": False, "error": str(exc)}


def _check_broker() -> dict:
    if not settings.REDIS_URL:
        return {"ok": True, "mode": "eager (no broker configured)"}
    try:
        import redis

        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
        return {"ok": True, "mode": "redis"}
    except Exception as exc:
        return {"ok": False, "mode": "redis", "error": str(exc)}


def _check_lake() -> dict:
    # Checked without writing: a probe file on every call (load balancers call every few seconds) wrote to the
    # shared lake thousands of times a day.
    lake = Path(settings.LAKE_DIR)
    folder = lake if lake.exists() else lake.parent  # before the first ingest, where it will be made
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return {"ok": False, "path": str(lake), "error": f"{folder} is missing or not writable by this process"}
    return {"ok": True, "path": str(lake)}
