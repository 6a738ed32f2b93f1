"""The simulated city's geography: districts, where people live and work, sites and cells.

A Foshan-sized area (about 70 x 80 km) with five districts, each with a dense centre, plus villages
scattered between them. Districts are the Voronoi regions of their seats clipped to the city box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import Voronoi, cKDTree
from shapely.geometry import Polygon, box, mapping

LON_MIN, LON_MAX, LAT_MIN, LAT_MAX = 112.70, 113.40, 22.65, 23.40
PROVINCE = ("44", "广东省", "Guangdong", "province", "")
CITY = ("4406", "佛山市", "Foshan", "city", "44")
# code, Chinese name, English name, centre lon, centre lat, centre spread (degrees), population weight
DISTRICTS = [
    ("440604", "禅城区", "Chancheng", 113.110, 23.010, 0.022, 0.22),
    ("440605", "南海区", "Nanhai", 113.120, 23.120, 0.050, 0.31),
    ("440606", "顺德区", "Shunde", 113.250, 22.830, 0.045, 0.28),
    ("440607", "三水区", "Sanshui", 112.880, 23.180, 0.040, 0.11),
    ("440608", "高明区", "Gaoming", 112.860, 22.880, 0.035, 0.08),
]
KM_PER_DEG_LAT = 111.0
KM_PER_DEG_LON = 111.0 * np.cos(np.radians(23.0))
RADIOS = np.array(["GSM", "LTE", "NR"])
MCC, MNC = 460, 0


@dataclass(frozen=True)
class Places:
    """A mixture of Gaussian clusters (district centres and villages) plus a thin uniform background."""

    centres: np.ndarray  # (k, 2) lon, lat
    spreads: np.ndarray  # (k,) degrees
    weights: np.ndarray  # (k,) summing to 1 - background
    background: float


def build_places(rng: np.random.Generator, *, villages: int = 40) -> Places:
    district_centres = np.array([[d[3], d[4]] for d in DISTRICTS])
    district_spreads = np.array([d[5] for d in DISTRICTS])
    district_weights = np.array([d[6] for d in DISTRICTS]) * 0.80
    village_centres = np.column_stack(
        [rng.uniform(LON_MIN + 0.03, LON_MAX - 0.03, villages), rng.uniform(LAT_MIN + 0.03, LAT_MAX - 0.03, villages)]
    )
    village_weights = rng.dirichlet(np.full(villages, 2.0)) * 0.17
    return Places(
        centres=np.vstack([district_centres, village_centres]),
        spreads=np.concatenate([district_spreads, np.full(villages, 0.006)]),
        weights=np.concatenate([district_weights, village_weights]),
        background=0.03,
    )


def sample_positions(
    rng: np.random.Generator, places: Places, n: int, *, centre_bias: float = 1.0
) -> np.ndarray:
    """n (lon, lat) points; centre_bias > 1 pulls them toward the district centres (workplaces)."""
    weights = places.weights.copy()
    weights[: len(DISTRICTS)] *= centre_bias
    weights = np.append(weights, places.background)
    weights /= weights.sum()
    cluster = rng.choice(len(weights), size=n, p=weights)
    points = np.empty((n, 2))
    background = cluster == len(weights) - 1
    clustered = ~background
    picked = cluster[clustered]
    spread = places.spreads[picked] / (centre_bias if centre_bias > 1 else 1.0) ** 0.5
    points[clustered] = places.centres[picked] + rng.normal(size=(clustered.sum(), 2)) * spread[:, None]
    points[background] = np.column_stack(
        [rng.uniform(LON_MIN, LON_MAX, background.sum()), rng.uniform(LAT_MIN, LAT_MAX, background.sum())]
    )
    points[:, 0] = np.clip(points[:, 0], LON_MIN + 1e-4, LON_MAX - 1e-4)
    points[:, 1] = np.clip(points[:, 1], LAT_MIN + 1e-4, LAT_MAX - 1e-4)
    return points


def district_of(points: np.ndarray) -> np.ndarray:
    """Index into DISTRICTS of the district containing each point (nearest seat = Voronoi region)."""
    seats = np.array([[d[3], d[4]] for d in DISTRICTS])
    _, index = cKDTree(_to_km(seats)).query(_to_km(points))
    return index


def voronoi_in_city(points: np.ndarray) -> list[Polygon]:
    """The Voronoi region of each point (lon, lat), in lon, lat, clipped to the city box: where it is the nearest."""
    far = np.array([[LON_MIN - 5, LAT_MIN - 5], [LON_MIN - 5, LAT_MAX + 5], [LON_MAX + 5, LAT_MIN - 5], [LON_MAX + 5, LAT_MAX + 5]])
    vor = Voronoi(_to_km(np.vstack([points, far])), qhull_options="QJ")
    city = box(LON_MIN, LAT_MIN, LON_MAX, LAT_MAX)
    return [Polygon(_from_km(vor.vertices[vor.regions[vor.point_region[i]]])).intersection(city) for i in range(len(points))]


def district_polygons() -> list[Polygon]:
    """The district outlines: Voronoi regions of the seats clipped to the city box."""
    return voronoi_in_city(np.array([[d[3], d[4]] for d in DISTRICTS]))


def districts_geojson() -> dict:
    features = []
    for (code, name, name_en, *_), polygon in zip(DISTRICTS, district_polygons()):
        features.append(
            {
                "type": "Feature",
                "properties": {"region_code": code, "name": name, "name_en": name_en},
                "geometry": mapping(polygon.simplify(0.0005)),
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _to_km(points: np.ndarray) -> np.ndarray:
    return np.column_stack([points[:, 0] * KM_PER_DEG_LON, points[:, 1] * KM_PER_DEG_LAT])


def _from_km(points: np.ndarray) -> np.ndarray:
    return np.column_stack([points[:, 0] / KM_PER_DEG_LON, points[:, 1] / KM_PER_DEG_LAT])


@dataclass(frozen=True)
class Network:
    """Sites with their sectors; cell i is sector i. Omni sites have one cell without an azimuth."""

    site_xy: np.ndarray  # (s, 2) lon, lat
    site_radio: np.ndarray  # (s,) index into RADIOS
    site_sectors: np.ndarray  # (s,) 1 (omni) or 3
    site_first_cell: np.ndarray  # (s,) index of the site's first cell
    cell_site: np.ndarray  # (c,)
    cell_azimuth: np.ndarray  # (c,) degrees, NaN for omni
    cell_key: np.ndarray  # (c,) "LTE-460-0-9512-1234567"
    tree: cKDTree

    def serving_cell(self, points: np.ndarray, *, neighbour: np.ndarray | None = None) -> np.ndarray:
        """The cell serving each point: the nearest site's sector facing it (or the second-nearest
        site where neighbour is True, as signalling often reports a neighbouring cell)."""
        _, nearest = self.tree.query(_to_km(points), k=2)
        site = nearest[:, 0] if neighbour is None else np.where(neighbour, nearest[:, 1], nearest[:, 0])
        delta = _to_km(points) - _to_km(self.site_xy[site])
        bearing = np.degrees(np.arctan2(delta[:, 0], delta[:, 1])) % 360
        first = self.site_first_cell[site]
        sectored = self.site_sectors[site] == 3
        offset = np.zeros(len(points), dtype=np.int64)
        if sectored.any():
            azimuths = self.cell_azimuth[first[sectored, None] + np.arange(3)]
            gap = np.abs((bearing[sectored, None] - azimuths + 180) % 360 - 180)
            offset[sectored] = gap.argmin(axis=1)
        return first + offset


def build_network(rng: np.random.Generator, places: Places, *, sites: int) -> Network:
    # Operators build where people are: most sites follow the population, the rest cover the land.
    dense = int(sites * 0.85)
    site_xy = np.vstack(
        [
            sample_positions(rng, places, dense, centre_bias=1.5),
            np.column_stack([rng.uniform(LON_MIN, LON_MAX, sites - dense), rng.uniform(LAT_MIN, LAT_MAX, sites - dense)]),
        ]
    )
    site_radio = rng.choice(3, size=sites, p=[0.10, 0.55, 0.35])
    site_sectors = np.where(rng.random(sites) < 0.88, 3, 1)
    site_first_cell = np.concatenate([[0], np.cumsum(site_sectors)[:-1]])
    cell_site = np.repeat(np.arange(sites), site_sectors)
    sector = np.arange(len(cell_site)) - site_first_cell[cell_site]
    rotation = rng.uniform(0, 120, sites)
    cell_azimuth = np.where(site_sectors[cell_site] == 3, (rotation[cell_site] + 120 * sector) % 360, np.nan)
    radio = site_radio[cell_site]
    district = district_of(site_xy)[cell_site]
    area = 9500 + district * 100 + (cell_site // 250) % 100  # tracking/location area codes by district
    node = 100000 + cell_site
    # LTE ECI = eNB * 256 + sector, NR NCI = gNB * 4096 + sector; GSM CIs are 16-bit.
    cell_id = np.select([radio == 1, radio == 2], [node * 256 + sector, node * 4096 + sector], (cell_site * 3 + sector) % 65535 + 1)
    cell_key = np.char.add(
        np.char.add(np.char.add(RADIOS[radio], f"-{MCC}-{MNC}-"), np.char.add(area.astype(str), "-")), cell_id.astype(str)
    )
    return Network(
        site_xy=site_xy,
        site_radio=site_radio,
        site_sectors=site_sectors,
        site_first_cell=site_first_cell,
        cell_site=cell_site,
        cell_azimuth=cell_azimuth,
        cell_key=cell_key,
        tree=cKDTree(_to_km(site_xy)),
    )


def serving_reach_km(site_xy: np.ndarray) -> np.ndarray:
    """How far each site serves: the farthest corner of its Voronoi region (where it is the nearest site, as
    `Network.serving_cell` decides) inside the city box. Irregular site spacing makes this often twice the
    distance to the nearest site or more."""
    points = _to_km(site_xy)
    return np.array([np.max(np.hypot(*(_to_km(np.asarray(region.exterior.coords)) - point).T))
                     for region, point in zip(voronoi_in_city(site_xy), points)])


def cells_table(rng: np.random.Generator, network: Network, *, as_of_epoch: int) -> dict[str, np.ndarray]:
    """The network as an OpenCelliD-format table, with azimuth, beamwidth and site_id. A cell's range is
    how far its site serves (a published range short of that would leave served homes outside every
    cell's footprint: a third of them, measured on the 1 M city, when the range was 0.7 x the spacing)."""
    parts = np.char.split(network.cell_key, "-")
    parts = np.array(parts.tolist())
    xy = network.site_xy[network.cell_site]
    reach_km = serving_reach_km(network.site_xy)[network.cell_site]
    n = len(network.cell_key)
    omni = np.isnan(network.cell_azimuth)
    return {
        "radio": parts[:, 0],
        "mcc": parts[:, 1].astype(int),
        "net": parts[:, 2].astype(int),
        "area": parts[:, 3].astype(int),
        "cell": parts[:, 4].astype(np.int64),
        "unit": np.zeros(n, dtype=int),
        "lon": np.round(xy[:, 0], 6),
        "lat": np.round(xy[:, 1], 6),
        "range": np.clip(reach_km * 1000, 200, 5000).astype(int),
        "samples": rng.integers(5, 500, n),
        "changeable": np.ones(n, dtype=int),
        "created": as_of_epoch - rng.integers(86400 * 200, 86400 * 3000, n),
        "updated": as_of_epoch - rng.integers(0, 86400 * 100, n),
        "averageSignal": np.zeros(n, dtype=int),
        "azimuth": np.where(omni, np.nan, np.round(network.cell_azimuth)),
        "beamwidth": np.where(omni, np.nan, 65.0),
        "site_id": np.char.add("S", network.cell_site.astype(str)),
    }
