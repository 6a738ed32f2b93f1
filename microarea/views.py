"""The micro-area map (微区域地图) for regional sales staff."""

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import render

from tagging.models import Product, Region, Snapshot
from tagging.templatetags.formatting import named

from .models import MicroArea
from .selectors import HEX_METRICS, LIST_METRICS, PRODUCT_METRICS, TARGET_LISTS
from .stages.aggregates import RESOLUTIONS


@login_required
@permission_required("microarea.view_microarea", raise_exception=True)
def area_map(request):
    """The user's districts as a hex choropleth with micro-area outlines; the page reads the hex, micro-area
    and stats APIs, so what it shows is exactly what those APIs allow the user."""
    products = Product.objects.order_by("code")
    source = TARGET_LISTS.get("campaign")
    campaigns = source.listed(request.user) if source else []
    asked = request.GET.get("campaign", "")
    if source and asked.isdigit() and all(c.id != int(asked) for c in campaigns):  # an older one, linked to
        campaigns += [c for c in [source.find(request.user, int(asked))] if c is not None]
    config = {
        # Campaign targets only once there is a frozen campaign to show.
        "metrics": [{"code": code, "label": label, "share": share, "product": code in PRODUCT_METRICS,
                     "campaign": code in LIST_METRICS}
                    for code, (_, share, label) in HEX_METRICS.items() if campaigns or code not in LIST_METRICS],
        "campaigns": [{"id": c.id, "label": c.label} for c in campaigns],
        "products": [{"code": p.code, "label": named(p)} for p in products],
        "default_product": "5g_plan" if products.filter(code="5g_plan").exists() else (products[0].code if products else None),
        "snapshots": [{"id": s.id, "date": str(s.as_of_date), "current": s.is_current}
                      for s in Snapshot.objects.order_by("-as_of_date", "-id")[:24]],
        "resolutions": list(RESOLUTIONS),
        "districts": [{"code": region.code, "name": named(region)} for region in
                      Region.objects.visible_to(request.user).districts().order_by("code")],
        "kinds": [{"code": code, "label": label} for code, label in MicroArea.Kind.choices if code != MicroArea.Kind.DISTRICT],
        "can_draw": request.user.has_perm("microarea.add_microarea"),
        "tile_url": settings.MAP_TILE_URL,
        "minimum_count": settings.AREA_MIN_COUNT,
    }
    return render(request, "map.html", {"config": config})
