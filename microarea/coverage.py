"""Coverage footprints of radio cells on H3 hexagons (resolution 9), from the cells table alone.

A cell with an azimuth covers a sector out to its range, clipped to its site's Voronoi region: beyond
that boundary another site is nearer and serves instead. The sector spans the directions nearer its
azimuth than the site's other azimuths (the bisectors between them: 120 degrees each on a 3-sector
site), since a phone camps on the strongest sector, not only inside the antenna's half-power beamwidth
(65 degrees, which would leave the directions between beams to no cell); a site's only azimuth covers
its beamwidth. The sector is filled with the res-9 hexes whose centres it contains, weights equal and
summing to 1; a sector smaller than any hex centre it could contain takes the hex under its centroid. A cell without an azimuth (an omni or an
unknown antenna) is its tower's own hex. Sites are the cells' site_id, or cells sharing a position.

Pure: numpy, scipy, shapely and h3 in, arrays out; nothing here reads the database or the lake.
"""

from __future__ import annotations

import h3
import numpy as np
import shapely
from scipy.spatial import Voronoi

RESOLUTION = 9
DEFAULT_RANGE_M = 1000.0  # OpenCelliD's range is often missing or 0
MAX_RANGE_M = 5000.0  # a macro cell's useful reach in a city; farther sites' regions take over anyway
DEFAULT_BEAMWIDTH = 65.0
ARC_POINTS = 12


def sites_of(site_id: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """A site number per cell: the site_id when given, otherwise one site per distinct position (~1 m)."""
    given = np.array([bool(s) and s == s for s in site_id], dtype=bool) if len(site_id) else np.zeros(0, bool)
    position = np.char.add(np.char.add(np.round(lon, 5).astype(str), ","), np.round(lat, 5).astype(str))
    key = np.where(given, np.char.add("id:", site_id.astype(str)), np.char.add("at:", position))
    return np.unique(key, return_inverse=True)[1]


class _Plane:
    """Kilometres east and north of a reference point: distances and angles right at city scale."""

    def __init__(self, lon: np.ndarray, lat: np.ndarray):
        self.lon0, self.lat0 = float(np.mean(lon)), float(np.mean(lat))
        self.kx, self.ky = 111.32 * np.cos(np.radians(self.lat0)), 110.57

    def to_km(self, lon, lat) -> np.ndarray:
        return np.column_stack([(np.asarray(lon) - self.lon0) * self.kx, (np.asarray(lat) - self.lat0) * self.ky])

    def to_lonlat(self, xy: np.ndarray) -> np.ndarray:
        return np.column_stack([xy[:, 0] / self.kx + self.lon0, xy[:, 1] / self.ky + self.lat0])


def voronoi_regions(points: np.ndarray, margin_km: float) -> list:
    """The Voronoi region of each point (km), bounded by the points' box widened by margin_km."""
    low, high = points.min(axis=0) - margin_km, points.max(axis=0) + margin_km
    frame = shapely.box(*low, *high)
    if len(points) == 1:
        return [frame]
    # Four far corners make every real region finite; each is then clipped to the frame.
    span = float(np.max(high - low)) * 10 + 10
    centre = (low + high) / 2
    far = centre + np.array([[-span, -span], [-span, span], [span, -span], [span, span]])
    diagram = Voronoi(np.vstack([points, far]), qhull_options="QJ")
    regions = []
    for i in range(len(points)):
        vertices = diagram.vertices[diagram.regions[diagram.point_region[i]]]
        regions.append(shapely.convex_hull(shapely.multipoints(vertices)).intersection(frame))
    return regions


def serving_arcs(site: np.ndarray, azimuth: np.ndarray, beamwidth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the bearings (degrees clockwise from north, start <= end) its sector serves: halfway to the
    site's neighbouring azimuths on either side; the beamwidth where the site has one azimuth (NaN without one).
    Cells of a site sharing an azimuth (bands or radios on one antenna) share the arc."""
    width = np.where(np.isnan(beamwidth), DEFAULT_BEAMWIDTH, beamwidth)
    start, end = azimuth - width / 2, azimuth + width / 2
    sectored = np.flatnonzero(~np.isnan(azimuth))
    by_site = sectored[np.argsort(site[sectored], kind="stable")]
    for cells in np.split(by_site, np.flatnonzero(np.diff(site[by_site])) + 1):  # one site's cells at a time
        distinct = np.unique(azimuth[cells] % 360)
        if len(distinct) < 2:
            continue
        own = np.searchsorted(distinct, azimuth[cells] % 360)
        before = (distinct[own] - distinct[own - 1]) % 360
        after = (distinct[(own + 1) % len(distinct)] - distinct[own]) % 360
        start[cells], end[cells] = distinct[own] - before / 2, distinct[own] + after / 2
    return start, end


def _sector(centre: np.ndarray, start: float, end: float, radius: float):
    """A circular sector in km between two bearings, clockwise from north as antennas are given."""
    if end - start >= 360:
        return shapely.Point(centre).buffer(radius, quad_segs=ARC_POINTS)
    bearings = np.radians(np.linspace(start, end, ARC_POINTS + 1))
    arc = centre + radius * np.column_stack([np.sin(bearings), np.cos(bearings)])
    return shapely.Polygon(np.vstack([centre, arc]))


def footprints(cell_key: np.ndarray, lon: np.ndarray, lat: np.ndarray, azimuth: np.ndarray, beamwidth: np.ndarray,
               range_m: np.ndarray, site_id: np.ndarray) -> dict[str, np.ndarray]:
    """Per cell, the res-9 hexes it covers with weights summing to 1: columns cell_key, h3 (int), weight."""
    n = len(cell_key)
    if n == 0:
        return {"cell_key": np.zeros(0, dtype=object), "h3": np.zeros(0, dtype=np.uint64), "weight": np.zeros(0)}
    plane = _Plane(lon, lat)
    site = sites_of(site_id, lon, lat)
    xy = plane.to_km(lon, lat)
    per_site = np.bincount(site)
    site_xy = np.column_stack([np.bincount(site, weights=xy[:, k]) / per_site for k in (0, 1)])
    radius = np.clip(np.where(np.isnan(range_m) | (range_m <= 0), DEFAULT_RANGE_M, range_m), 100, MAX_RANGE_M) / 1000
    regions = voronoi_regions(site_xy, margin_km=float(radius.max()))
    start, end = serving_arcs(site, azimuth, beamwidth)
    keys, hexes, weights = [], [], []
    for i in range(n):  # cells, not subscribers: tens of thousands at most, each a few shapely operations
        if np.isnan(azimuth[i]):
            covered = [h3.latlng_to_cell(float(lat[i]), float(lon[i]), RESOLUTION)]
        else:
            area = _sector(site_xy[site[i]], float(start[i]), float(end[i]), float(radius[i])).intersection(regions[site[i]])
            covered = _fill(area, plane) if not area.is_empty else []
            if not covered:
                point = plane.to_lonlat(np.array(area.representative_point().coords if not area.is_empty
                                                 else [site_xy[site[i]]]))[0]
                covered = [h3.latlng_to_cell(float(point[1]), float(point[0]), RESOLUTION)]
        keys.extend([cell_key[i]] * len(covered))
        hexes.extend(h3.str_to_int(h) for h in covered)
        weights.extend([1.0 / len(covered)] * len(covered))
    return {"cell_key": np.array(keys, dtype=object), "h3": np.array(hexes, dtype=np.uint64), "weight": np.array(weights)}


def _fill(area, plane: _Plane) -> list[str]:
    """The res-9 hexes whose centres lie in a km-plane polygon (or multipolygon)."""
    covered: list[str] = []
    for polygon in getattr(area, "geoms", [area]):
        if polygon.geom_type != "Polygon" or polygon.is_empty:
            continue
        outer = plane.to_lonlat(np.asarray(polygon.exterior.coords))
        holes = [plane.to_lonlat(np.asarray(ring.coords)) for ring in polygon.interiors]
        shape = h3.LatLngPoly([(y, x) for x, y in outer], *[[(y, x) for x, y in hole] for hole in holes])
        covered.extend(h3.polygon_to_cells(shape, RESOLUTION))
    return sorted(set(covered))
