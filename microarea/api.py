"""REST for micro-areas: GeoJSON out, a polygon, hex list or cell list in; scoped to the caller's regions."""

from __future__ import annotations

import h3
from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from tagging.api.permissions import requires
from tagging.api.views import snapshot_asked
from tagging.models import Product, Region

from .aggregates import RESOLUTIONS
from .models import MicroArea
from .selectors import hex_metric
from .services.coverage import cell_coverage, network_extent
from .services.micro_areas import MicroAreaRefused, create_micro_area


def as_feature(area: MicroArea) -> dict:
    """A GeoJSON Feature: the drawn polygon, or the outline of the area's hexes."""
    geometry = area.geometry
    if geometry is None:
        shape = h3.cells_to_h3shape([h3.int_to_str(int(c)) for c in area.hex_array()])
        geometry = h3.h3shape_to_geo(shape)
    return {"type": "Feature", "id": area.id, "geometry": geometry, "properties": {
        "id": area.id, "name": area.name, "kind": area.kind, "kind_label": area.get_kind_display(),
        "region": area.region.code, "region_name": area.region.name, "source": area.source, "hexes": area.hex_count,
    }}


class MicroAreaCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    kind = serializers.ChoiceField(choices=MicroArea.Kind.choices, default=MicroArea.Kind.CUSTOM)
    region = serializers.CharField(help_text="District code, one of yours")
    geometry = serializers.JSONField(required=False, help_text="GeoJSON Polygon or MultiPolygon (lon, lat)")
    hexes = serializers.ListField(child=serializers.CharField(), required=False, help_text="H3 cells, res 9 or coarser")
    cells = serializers.ListField(child=serializers.CharField(), required=False, help_text="cell keys radio-mcc-net-area-cell")


class MicroAreaListView(APIView):
    """Micro-areas in your regions as GeoJSON; POST draws a new one (polygon, hex list or cell list)."""

    def get_permissions(self):
        return [requires("microarea.add_microarea" if self.request.method == "POST" else "microarea.view_microarea")()]

    @extend_schema(responses=dict)
    def get(self, request):
        areas = MicroArea.objects.visible_to(request.user).select_related("region")
        kind = request.query_params.get("kind")
        if kind:
            if kind not in MicroArea.Kind.values:
                return Response({"kind": [f"one of {', '.join(MicroArea.Kind.values)}"]}, status=status.HTTP_400_BAD_REQUEST)
            areas = areas.filter(kind=kind)
        return Response({"type": "FeatureCollection", "features": [as_feature(a) for a in areas]})

    @extend_schema(request=MicroAreaCreateSerializer, responses={201: dict, 400: dict})
    def post(self, request):
        given = MicroAreaCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        region = Region.objects.visible_to(request.user).filter(code=data["region"], level=Region.Level.DISTRICT).first()
        if region is None:
            return Response({"region": [f"{data['region']!r} is not a district of yours"]}, status=status.HTTP_400_BAD_REQUEST)
        cells, extent = network_extent(cell_coverage())
        try:
            area = create_micro_area(name=data["name"], kind=data["kind"], region=region, user=request.user,
                                     geometry=data.get("geometry"), hexes=data.get("hexes"), cells=data.get("cells"),
                                     coverage=cells, city_hexes=extent)
        except MicroAreaRefused as exc:
            return Response({exc.field: [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(as_feature(area), status=status.HTTP_201_CREATED)


def hex_polygon(cell: str) -> dict:
    """A hex as a closed GeoJSON ring in (lon, lat) order."""
    ring = [[lng, lat] for lat, lng in h3.cell_to_boundary(cell)]
    return {"type": "Polygon", "coordinates": [ring + ring[:1]]}


HEX_METRICS = {
    "subscribers": "用户数 Subscribers",
    "product_users": "产品用户 Product users",
    "penetration": "产品渗透率 Product penetration",
    "five_g_share": "5G终端占比 5G-handset share",
}


class HexView(APIView):
    """Hexes of your districts with one metric each, as GeoJSON: subscribers living (or working) there,
    a product's users or penetration, the 5G-handset share. Hexes with fewer than AREA_MIN_COUNT
    subscribers are suppressed (value null)."""

    permission_classes = [requires("microarea.view_microarea")]

    @extend_schema(responses=dict)
    def get(self, request):
        params = request.query_params
        errors = {}
        resolution = params.get("resolution", "8")
        if not resolution.isdigit() or int(resolution) not in RESOLUTIONS:
            errors["resolution"] = [f"one of {', '.join(map(str, RESOLUTIONS))}"]
        metric = params.get("metric", "subscribers")
        if metric not in HEX_METRICS:
            errors["metric"] = [f"one of {', '.join(HEX_METRICS)}"]
        basis = params.get("basis", "home")
        if basis not in ("home", "work"):
            errors["basis"] = ["home or work"]
        product = params.get("product")
        if metric in ("product_users", "penetration") and not product:
            errors["product"] = [f"{metric} needs a product code"]
        elif product and not Product.objects.filter(code=product).exists():
            errors["product"] = [f"no product {product!r}"]
        if errors:
            return Response(errors, status=status.HTTP_400_BAD_REQUEST)
        snapshot = snapshot_asked(request)
        rows = hex_metric(snapshot=snapshot, user=request.user, resolution=int(resolution), metric=metric,
                          basis=basis, product=product, minimum=settings.AREA_MIN_COUNT)
        features = [{"type": "Feature", "id": row["h3"], "geometry": hex_polygon(row["h3"]), "properties": row} for row in rows]
        return Response({"type": "FeatureCollection", "snapshot": str(snapshot.as_of_date), "resolution": int(resolution),
                         "metric": metric, "metric_label": HEX_METRICS[metric], "basis": basis, "product": product,
                         "features": features})
