"""Creating micro-areas from a drawn polygon, a list of hexes or a list of cells, with clear refusals."""

from __future__ import annotations

import h3
import numpy as np
import shapely
from django.db import transaction
from shapely.validation import explain_validity

from tagging.models import Region

from ..coverage import RESOLUTION
from ..models import MicroArea

MAX_HEXES = 200_000  # a district of the simulated city is tens of thousands of res-9 hexes


class MicroAreaRefused(ValueError):
    """Bad input for a micro-area; `field` names the part of the request that is wrong."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.field = field


def hexes_of_polygon(geometry: dict) -> np.ndarray:
    """The res-9 hexes whose centres lie in a GeoJSON Polygon or MultiPolygon (lon, lat order)."""
    try:
        shape = shapely.geometry.shape(geometry)
    except Exception as exc:  # shapely raises several types for malformed GeoJSON
        raise MicroAreaRefused(f"not a GeoJSON polygon: {exc}", field="geometry") from None
    if shape.geom_type not in ("Polygon", "MultiPolygon"):
        raise MicroAreaRefused(f"a micro-area is a Polygon or MultiPolygon, not a {shape.geom_type}", field="geometry")
    problem = "" if shape.is_empty or shape.is_valid else explain_validity(shape)
    # A bow-tie's halves cancel to zero area: name the crossing, not emptiness.
    if shape.is_empty or shape.area == 0 and "Self-intersection" not in problem:
        raise MicroAreaRefused("the polygon is empty (no area)", field="geometry")
    if problem:
        raise MicroAreaRefused(f"the polygon is not valid: {problem}", field="geometry")
    lon_min, lat_min, lon_max, lat_max = shape.bounds
    if not (-180 <= lon_min and lon_max <= 180 and -90 <= lat_min and lat_max <= 90):
        raise MicroAreaRefused("coordinates must be longitude, latitude in degrees (GeoJSON order)", field="geometry")
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
    """Res-9 hexes from H3 strings or integers; coarser hexes stand for all their res-9 children."""
    found: set[int] = set()
    for position, given in enumerate(hexes, start=1):
        text = h3.int_to_str(given) if isinstance(given, int) else str(given).strip().lower()
        if not h3.is_valid_cell(text):
            raise MicroAreaRefused(f"item {position}: {given!r} is not an H3 cell", field="hexes")
        resolution = h3.get_resolution(text)
        if resolution > RESOLUTION:
            raise MicroAreaRefused(f"item {position}: {given!r} is finer than resolution {RESOLUTION}", field="hexes")
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
    return np.array(sorted({h for key in cell_keys for h in coverage[key]}), dtype=np.uint64)


def _inside_city(hexes: np.ndarray, city_hexes: set[int] | None) -> None:
    if city_hexes is None:
        return
    parents = {h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(h)), 6)) for h in hexes[:: max(1, len(hexes) // 200)]}
    if not parents & city_hexes:
        raise MicroAreaRefused("the area lies outside the city's network coverage", field="geometry")


@transaction.atomic
def create_micro_area(*, name: str, kind: str, region: Region, user=None, geometry: dict | None = None,
                      hexes: list | None = None, cells: list[str] | None = None,
                      coverage: dict[str, list[int]] | None = None, city_hexes: set[int] | None = None) -> MicroArea:
    """Make a micro-area from exactly one of a polygon, a hex list or a cell list; refuse bad input,
    naming the field, and save nothing then. `city_hexes` (res-6 parents of the network's coverage)
    refuses areas far outside the city."""
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
        found, source, definition = hexes_of_cells(list(cells), coverage or {}), MicroArea.Source.CELLS, list(cells)
    if len(found) > MAX_HEXES:
        raise MicroAreaRefused(f"the area covers {len(found):,} hexes; at most {MAX_HEXES:,}", field=given[0])
    _inside_city(found, city_hexes)
    return MicroArea.objects.create(
        name=name.strip(), kind=kind, region=region, source=source, geometry=geometry, definition=definition,
        hexes=found.astype("<u8").tobytes(), hex_count=len(found),
        created_by=user if user is not None and user.is_authenticated else None,
    )
