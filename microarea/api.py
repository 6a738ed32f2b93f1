"""REST for micro-areas: GeoJSON out, a polygon, hex list or cell list in; scoped to the caller's regions."""

from __future__ import annotations

import h3
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from tagging.api.permissions import requires
from tagging.models import Region

from .models import MicroArea
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
