"""Creating micro-areas from a drawn polygon, a list of hexes or a list of cells, with clear refusals."""

from __future__ import annotations

import math
from pathlib import Path

import h3
import numpy as np
import shapely
from django.conf import settings
from django.db import transaction
from shapely.validation import explain_validity

from tagging.models import Region

from ..coverage import RESOLUTION
from ..models import MicroArea
from .coverage import cell_footprints, network_extent

MAX_VERTICES = 10_000  # a district outline from a GIS file has a few thousand
EARTH_RADIUS_KM = 6371.0088


class MicroAreaRefused(ValueError):
    """Bad input for a micro-area; `field` names the part of the request that is wrong."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.field = field


def _too_large(cells: int, field: str) -> MicroAreaRefused:
    limit = settings.MICROAREA_MAX_HEXES
    return MicroAreaRefused(f"the area would cover about {cells:,} resolution-{RESOLUTION} hexes; at most {limit:,} "
                            f"(MICROAREA_MAX_HEXES)", field=field)


def area_km2(shape) -> float:
    """A lon/lat shape's area on the sphere, in km², through the sinusoidal projection (equal-area): good to
    a few percent for a city, and of the right order for a continent, which is all a size limit needs."""
    projected = shapely.transform(shape, lambda xy: np.column_stack([xy[:, 0] * np.cos(np.radians(xy[:, 1])), xy[:, 1]]))
    return projected.area * (math.pi / 180 * EARTH_RADIUS_KM) ** 2


def hexes_of_polygon(geometry: dict) -> np.ndarray:
    """The res-9 hexes whose centres lie in a GeoJSON Polygon or MultiPolygon (lon, lat order); one whose
    area holds more than MICROAREA_MAX_HEXES of them is refused before any is listed."""
    try:
        shape = shapely.geometry.shape(geometry)
    except Exception as exc:  # shapely raises several types for malformed GeoJSON
        raise MicroAreaRefused(f"not a GeoJSON polygon: {exc}", field="geometry") from None
    if shape.geom_type not in ("Polygon", "MultiPolygon"):
        raise MicroAreaRefused(f"a micro-area is a Polygon or MultiPolygon, not a {shape.geom_type}", field="geometry")
    if (vertices := shapely.get_num_coordinates(shape)) > MAX_VERTICES:
        raise MicroAreaRefused(f"the polygon has {vertices:,} vertices; at most {MAX_VERTICES:,}", field="geometry")
    problem = "" if shape.is_empty or shape.is_valid else explain_validity(shape)
    # A bow-tie's halves cancel to zero area: name the crossing, not emptiness.
    if shape.is_empty or shape.area == 0 and "Self-intersection" not in problem:
        raise MicroAreaRefused("the polygon is empty (no area)", field="geometry")
    if problem:
        raise MicroAreaRefused(f"the polygon is not valid: {problem}", field="geometry")
    lon_min, lat_min, lon_max, lat_max = shape.bounds
    if not (-180 <= lon_min and lon_max <= 180 and -90 <= lat_min and lat_max <= 90):
        raise MicroAreaRefused("coordinates must be longitude, latitude in degrees (GeoJSON order)", field="geometry")
    estimate = round(area_km2(shape) / h3.average_hexagon_area(RESOLUTION, "km^2"))
    if estimate > settings.MICROAREA_MAX_HEXES:
        raise _too_large(estimate, "geometry")
    found: set[int] = set()
    for polygon in getattr(shape, "geoms", [shape]):
        outer = [(y, x) for x, y in polygon.exterior.coords]
        holes = [[(y, x) for x, y in ring.coords] for ring in polygon.interiors]
        found.update(h3.str_to_int(c) for c in h3.polygon_to_cells(h3.LatLngPoly(outer, *holes), RESOLUTION))
    if not found:  # smaller than one hex: the hex under it
        point = shape.representative_point()
        found.add(h3.str_to_int(h3.latlng_to_cell(point.y, point.x, RESOLUTION)))
    return np.array(sorted(found), dtype=np.uint64)


def hexes_of_list(hexes: list) -> np.ndarray:
    """Res-9 hexes from H3 strings or integers; coarser hexes, down to MICROAREA_COARSEST_RESOLUTION, stand for
    all their res-9 children. The count is known from the resolutions before any child is listed."""
    limit, coarsest = settings.MICROAREA_MAX_HEXES, settings.MICROAREA_COARSEST_RESOLUTION
    if len(hexes) > limit:
        raise _too_large(len(hexes), "hexes")
    cells = []
    for position, given in enumerate(hexes, start=1):
        try:
            text = h3.int_to_str(given) if isinstance(given, int) and not isinstance(given, bool) else str(given).strip().lower()
        except (ValueError, OverflowError, h3.H3BaseException):
            text = ""
        if not h3.is_valid_cell(text):
            raise MicroAreaRefused(f"item {position}: {given!r} is not an H3 cell", field="hexes")
        resolution = h3.get_resolution(text)
        if resolution > RESOLUTION:
            raise MicroAreaRefused(f"item {position}: {given!r} is finer than resolution {RESOLUTION}", field="hexes")
        if resolution < coarsest:
            raise MicroAreaRefused(f"item {position}: {given!r} is of resolution {resolution}; the coarsest allowed is "
                                   f"{coarsest} (MICROAREA_COARSEST_RESOLUTION)", field="hexes")
        cells.append((text, resolution))
    if (size := sum(7 ** (RESOLUTION - resolution) for _, resolution in cells)) > limit:
        raise _too_large(size, "hexes")
    found: set[int] = set()
    for text, resolution in cells:
        found.update(h3.str_to_int(c) for c in (h3.cell_to_children(text, RESOLUTION) if resolution < RESOLUTION else [text]))
    if not found:
        raise MicroAreaRefused("the hex list is empty", field="hexes")
    return np.array(sorted(found), dtype=np.uint64)


def hexes_of_cells(cell_keys: list[str], coverage: dict[str, list[int]]) -> np.ndarray:
    """The union of the cells' coverage footprints."""
    unknown = [key for key in cell_keys if key not in coverage]
    if unknown:
        raise MicroAreaRefused(f"unknown cells: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}", field="cells")
    if not cell_keys:
        raise MicroAreaRefused("the cell list is empty", field="cells")
    if (size := sum(len(coverage[key]) for key in cell_keys)) > settings.MICROAREA_MAX_HEXES:
        raise _too_large(size, "cells")
    return np.array(sorted({h for key in cell_keys for h in coverage[key]}), dtype=np.uint64)


def _inside_city(hexes: np.ndarray, city_hexes: frozenset[int] | None) -> None:
    if city_hexes is None:
        return
    parents = {h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(h)), 6)) for h in hexes[:: max(1, len(hexes) // 200)]}
    if not parents & city_hexes:
        raise MicroAreaRefused("the area lies outside the city's network coverage", field="geometry")


def _enough_residents(hexes: np.ndarray, *, field: str) -> None:
    """An area drawn by someone who sees suppressed counts must hold at least ten times AREA_MIN_COUNT residents
    (in the current snapshot), so that its panel and audiences never count a handful of homes. The refusal does
    not say how many it has: that would be the small count."""
    from tagging.models import Snapshot
    from tagging.services.audiences import stage_members

    needed = 10 * settings.AREA_MIN_COUNT
    snapshot = Snapshot.objects.current()
    # Not through area()'s cache (living_in): a drawn area is asked about once, and its hexes would stay as a key.
    residents = len(stage_members(snapshot.run_id, "location", "home_h3 IN (SELECT unnest($hexes::UBIGINT[]))",
                                  {"hexes": hexes.tolist()})) if snapshot else 0
    if residents < needed:
        raise MicroAreaRefused(f"the area has fewer than {needed} residents in the current snapshot; an area you draw "
                               f"needs at least {needed} (ten times AREA_MIN_COUNT): draw it larger", field=field)


@transaction.atomic
def create_micro_area(*, name: str, kind: str, region: Region, user=None, geometry: dict | None = None,
                      hexes: list | None = None, cells: list[str] | None = None,
                      coverage_file: Path | None = None) -> MicroArea:
    """Make a micro-area from exactly one of a polygon, a hex list or a cell list; refuse bad input,
    naming the field, and save nothing then. The cells' footprints come from `coverage_file`, whose extent
    (the res-6 hexes the network covers) also refuses areas far outside the city."""
    given = [k for k, v in (("geometry", geometry), ("hexes", hexes), ("cells", cells)) if v is not None]
    if len(given) != 1:
        raise MicroAreaRefused("give exactly one of geometry (a GeoJSON polygon), hexes or cells", field="geometry")
    if not name or not name.strip():
        raise MicroAreaRefused("a micro-area needs a name", field="name")
    if kind not in MicroArea.Kind.values:
        raise MicroAreaRefused(f"kind must be one of {', '.join(MicroArea.Kind.values)}", field="kind")
    if user is not None and not Region.objects.visible_to(user).filter(id=region.id).exists():
        raise MicroAreaRefused(f"region {region.code} is not one of yours", field="region")
    if MicroArea.objects.filter(region=region, name=name.strip()).exists():
        raise MicroAreaRefused(f"{region.name} already has a micro-area named {name.strip()!r}", field="name")
    if geometry is not None:
        found, source, definition = hexes_of_polygon(geometry), MicroArea.Source.POLYGON, []
    elif hexes is not None:
        found, source, definition = hexes_of_list(list(hexes)), MicroArea.Source.HEXES, [str(h) for h in hexes]
    else:
        cells = [str(key) for key in cells]
        found, source, definition = hexes_of_cells(cells, cell_footprints(coverage_file, cells)), MicroArea.Source.CELLS, cells
    if len(found) > settings.MICROAREA_MAX_HEXES:  # a polygon's estimate is a few percent off
        raise _too_large(len(found), given[0])
    _inside_city(found, network_extent(coverage_file))
    if user is not None and not user.has_perm("tagging.view_small_counts"):
        _enough_residents(found, field=given[0])
    return MicroArea.objects.create(
        name=name.strip(), kind=kind, region=region, source=source, geometry=geometry, definition=definition,
        hexes=found.astype("<u8").tobytes(), hex_count=len(found),
        created_by=user if user is not None and user.is_authenticated else None,
    )
