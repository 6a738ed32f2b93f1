"""REST for micro-areas: GeoJSON out, a polygon, hex list or cell list in; scoped to the caller's regions."""

from __future__ import annotations

import json
from functools import lru_cache

import django_filters
import h3
from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from tagging.api.common import SNAPSHOT_PARAMETER, CodeField, json_with_list, snapshot_asked
from tagging.api.permissions import requires
from tagging.api.serializers import SubscriberSerializer
from tagging.models import Product, Region, Subscriber

from .models import MicroArea
from .selectors import (
    HEX_METRICS,
    LIST_METRICS,
    PRODUCT_METRICS,
    TARGET_LISTS,
    TargetList,
    area_stats,
    hex_metric,
    res9_hexes,
    subscriber_locations,
)
from .services.coverage import cell_coverage
from .services.micro_areas import MicroAreaRefused, create_micro_area
from .stages.aggregates import RESOLUTIONS


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


class MicroAreaFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=MicroArea.Kind.choices,
                                       error_messages={"invalid_choice": f"one of {', '.join(MicroArea.Kind.values)}"})

    class Meta:
        model = MicroArea
        fields = ["kind"]


class MicroAreaCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    kind = serializers.ChoiceField(choices=MicroArea.Kind.choices, default=MicroArea.Kind.CUSTOM)
    region = serializers.CharField(help_text="District code, one of yours")
    geometry = serializers.JSONField(required=False, help_text="GeoJSON Polygon or MultiPolygon (lon, lat)")
    hexes = serializers.ListField(child=serializers.CharField(), required=False, help_text="H3 cells, res 9 or coarser")
    cells = serializers.ListField(child=serializers.CharField(), required=False, help_text="cell keys radio-mcc-net-area-cell")


PRODUCT_PARAMETER = OpenApiParameter("product", str, description="Product code (products/), e.g. 5g_plan")
CAMPAIGN_PARAMETER = OpenApiParameter("campaign", int, description="A frozen campaign of your regions (campaigns/): "
                                                                   "its contact list, counted where they live or work")
KIND_PARAMETER = OpenApiParameter("kind", str, enum=MicroArea.Kind.values)
HEX_PARAMETERS = [
    OpenApiParameter("resolution", int, enum=list(RESOLUTIONS), description="H3 resolution (default 8)"),
    OpenApiParameter("metric", str, enum=list(HEX_METRICS), description="default: subscribers"),
    OpenApiParameter("basis", str, enum=["home", "work"], description="where subscribers live (default) or work"),
    PRODUCT_PARAMETER, CAMPAIGN_PARAMETER, SNAPSHOT_PARAMETER,
]


class MicroAreaListView(APIView):
    """Micro-areas in your regions as GeoJSON; POST draws a new one (polygon, hex list or cell list)."""

    def get_permissions(self):
        return [requires("microarea.add_microarea" if self.request.method == "POST" else "microarea.view_microarea")()]

    @extend_schema(parameters=[KIND_PARAMETER], responses=dict)
    def get(self, request):
        areas = MicroAreaFilter(request.query_params, MicroArea.objects.visible_to(request.user).select_related("region"))
        if not areas.is_valid():
            return Response(areas.errors, status=status.HTTP_400_BAD_REQUEST)
        areas = areas.qs
        return Response({"type": "FeatureCollection", "features": [as_feature(a) for a in areas]})

    @extend_schema(request=MicroAreaCreateSerializer, responses={201: dict, 400: dict})
    def post(self, request):
        given = MicroAreaCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        region = Region.objects.visible_to(request.user).districts().filter(code=data["region"]).first()
        if region is None:
            return Response({"region": [f"{data['region']!r} is not a district of yours"]}, status=status.HTTP_400_BAD_REQUEST)
        try:
            area = create_micro_area(name=data["name"], kind=data["kind"], region=region, user=request.user,
                                     geometry=data.get("geometry"), hexes=data.get("hexes"), cells=data.get("cells"),
                                     coverage_file=cell_coverage())
        except MicroAreaRefused as exc:
            return Response({exc.field: [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(as_feature(area), status=status.HTTP_201_CREATED)


def _one_of(values) -> dict:
    return {"invalid_choice": f"one of {', '.join(map(str, values))}"}


def product_field(*, required: bool = False) -> serializers.SlugRelatedField:
    """?product=: a product code (what area panels, maps and exports are about)."""
    return CodeField(
        slug_field="code", queryset=Product.objects.select_related("demand_tag", "potential_tag"), required=required,
        error_messages={"does_not_exist": "no product '{value}'", "required": "a product code is needed"})


class AreaQuery(serializers.Serializer):
    """?product= and ?campaign=, as every area panel and map reads them (context: the request)."""

    product = product_field()
    campaign = serializers.CharField(required=False, help_text="A frozen campaign of your regions, as a target list")

    def validate_campaign(self, asked: str) -> TargetList:
        source = TARGET_LISTS.get("campaign")
        found = source.find(self.context["request"].user, int(asked)) if source and asked.isdigit() else None
        if found is None:
            raise serializers.ValidationError(f"no frozen campaign {asked!r} in your regions")
        return found


def area_query(request, query: type[serializers.Serializer] = AreaQuery) -> dict:
    """The request's query parameters read by `query`; a ValidationError (400, by field) otherwise."""
    given = query(data=request.query_params, context={"request": request})
    given.is_valid(raise_exception=True)
    return given.validated_data


class HexQuery(AreaQuery):
    resolution = serializers.ChoiceField(choices=RESOLUTIONS, default=8, error_messages=_one_of(RESOLUTIONS))
    metric = serializers.ChoiceField(choices=list(HEX_METRICS), default="subscribers", error_messages=_one_of(HEX_METRICS))
    basis = serializers.ChoiceField(choices=["home", "work"], default="home", error_messages={"invalid_choice": "home or work"})

    def validate(self, data):
        metric = data["metric"]
        if metric in PRODUCT_METRICS and "product" not in data:
            raise serializers.ValidationError({"product": [f"{metric} needs a product code"]})
        if metric in LIST_METRICS and "campaign" not in data:
            raise serializers.ValidationError({"campaign": [f"{metric} needs a campaign id"]})
        return data


@lru_cache(maxsize=200_000)
def hex_polygon_json(cell: str) -> str:
    """A hex as a GeoJSON polygon (a closed ring in lon, lat order), as JSON text. Kept: a city has a few
    thousand hexes a resolution, and working out and encoding their outlines was most of a map response."""
    ring = [[lng, lat] for lat, lng in h3.cell_to_boundary(cell)]
    return json.dumps({"type": "Polygon", "coordinates": [ring + ring[:1]]}, separators=(",", ":"))


def _json_value(value) -> str:
    return "null" if value is None else ("true" if value is True else "false" if value is False else repr(value))


class HexView(APIView):
    """Hexes of your districts with one metric each, as GeoJSON: subscribers living (or working) there,
    a product's users or penetration, the 5G-handset share, a campaign's targets (?campaign=). Hexes with fewer
    than AREA_MIN_COUNT subscribers are suppressed (value null)."""

    permission_classes = [requires("microarea.view_microarea")]

    @extend_schema(parameters=HEX_PARAMETERS, responses=dict)
    def get(self, request):
        asked = area_query(request, HexQuery)
        resolution, metric, basis, target_list = asked["resolution"], asked["metric"], asked["basis"], asked.get("campaign")
        product = asked["product"].code if "product" in asked else None
        snapshot = snapshot_asked(request)
        rows = hex_metric(snapshot=snapshot, user=request.user, resolution=resolution, metric=metric,
                          basis=basis, product=product, target_list=target_list, minimum=settings.AREA_MIN_COUNT)
        head = {"type": "FeatureCollection", "snapshot": str(snapshot.as_of_date), "resolution": int(resolution),
                "metric": metric, "metric_label": str(HEX_METRICS[metric][2]), "basis": basis, "product": product,
                "campaign": target_list.id if metric in LIST_METRICS else None}
        return json_with_list(head, "features", (_hex_feature(row) for row in rows))


def _hex_feature(row: dict) -> str:
    """One hex as GeoJSON text (written by hand: json.dumps of a large map is most of its time)."""
    leading = f',"leading":{json.dumps(row["leading"], ensure_ascii=False)}' if "leading" in row else ""
    return (f'{{"type":"Feature","id":"{row["h3"]}","geometry":{hex_polygon_json(row["h3"])},"properties":{{'
            f'"h3":"{row["h3"]}","subscribers":{_json_value(row["subscribers"])},"value":{_json_value(row["value"])},'
            f'"suppressed":{_json_value(row["suppressed"])}{leading}}}}}')


def valid_hex(cell: str) -> Response | None:
    if h3.is_valid_cell(cell) and h3.get_resolution(cell) in RESOLUTIONS:
        return None
    return Response({"hex": [f"{cell!r} is not an H3 cell of resolution {', '.join(map(str, RESOLUTIONS))}"]},
                    status=status.HTTP_400_BAD_REQUEST)


def area_asked(request, pk: int) -> MicroArea | None:
    return MicroArea.objects.visible_to(request.user).select_related("region").filter(pk=pk).first()


def no_area(pk: int) -> Response:
    return Response({"detail": f"no micro-area {pk} in your regions"}, status=status.HTTP_404_NOT_FOUND)


def _stats_response(request, hexes, described: dict):
    asked = area_query(request)
    stats = area_stats(snapshot=snapshot_asked(request), user=request.user, hexes=hexes, product=asked.get("product"),
                       target_list=asked.get("campaign"), minimum=settings.AREA_MIN_COUNT)
    return Response({**described, **stats})


STATS_PARAMETERS = [PRODUCT_PARAMETER, CAMPAIGN_PARAMETER, SNAPSHOT_PARAMETER]
STATS_DOC = ("Counts are summed over your districts only; any count under AREA_MIN_COUNT is null, and so is a "
             "share built on one. ?product= adds that product's developed, demand and potential customers; "
             "?campaign= the campaign's targets living there.")


class MicroAreaStatsView(APIView):
    __doc__ = "One micro-area's panel: subscribers living and working there, products, terminal mix, top tags, " \
              "change since the previous snapshot and home moves in and out. " + STATS_DOC

    permission_classes = [requires("microarea.view_microarea")]

    @extend_schema(parameters=STATS_PARAMETERS, responses={200: dict, 400: dict, 404: dict})
    def get(self, request, pk: int):
        area = area_asked(request, pk)
        if area is None:
            return no_area(pk)
        return _stats_response(request, area.hex_array(), {"area": as_feature(area)["properties"]})


class HexStatsView(APIView):
    __doc__ = "One hex's panel (any of resolutions 9, 8, 7), as for a micro-area. " + STATS_DOC

    permission_classes = [requires("microarea.view_microarea")]

    @extend_schema(parameters=STATS_PARAMETERS, responses={200: dict, 400: dict})
    def get(self, request, cell: str):
        return valid_hex(cell) or _stats_response(request, res9_hexes(cell), {"hex": {"h3": cell, "resolution": h3.get_resolution(cell)}})


class SubscriberLocationsView(APIView):
    """A subscriber's location ownership over the last snapshots (MSISDN masked): home and work cell and
    hex with confidence and days seen, the micro-areas holding them, and when the home moved."""

    permission_classes = [requires("tagging.view_subscriber")]

    @extend_schema(responses=dict)
    def get(self, request, pk: int):
        subscriber = Subscriber.objects.visible_to(request.user).select_related("region").filter(pk=pk).first()
        if subscriber is None:
            return Response({"detail": f"no subscriber {pk} in your regions"}, status=status.HTTP_404_NOT_FOUND)
        return Response({"subscriber": SubscriberSerializer(subscriber).data,
                         "history": subscriber_locations(subscriber_id=subscriber.id, user=request.user)})
