"""Behaviour segments: k-means on standardised behaviour features, described and matched. Pure numpy.

Each segment is described by its most distinguishing features ("SMS-heavy, low data, night-active") and
keeps its code from one snapshot to the next, so `segment_3` means the same kind of subscriber over time.
A run re-centres the previous model's segments on this sample (each centroid the mean of the subscribers
nearest to it); a fresh fit replaces them only when it explains the sample clearly better. Behaviour data
have no sharp clusters, so fresh fits of two samples of the same subscribers land in different
partitions: matched by centroid (Hungarian assignment), they kept fewer than half of the subscribers in
their segment from one week to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

# feature, SQL giving the value the model sees (volumes on a log scale), words when high / low (zh, en)
BEHAVIOUR = [
    ("voice_minutes_30d", "ln(1 + coalesce(voice_minutes_30d, 0))", ("通话多", "voice-heavy"), ("通话少", "little voice")),
    ("sms_30d", "ln(1 + coalesce(sms_30d, 0))", ("短信多", "SMS-heavy"), ("短信少", "little SMS")),
    ("data_mb_30d", "ln(1 + coalesce(data_mb_30d, 0))", ("流量大", "data-heavy"), ("流量少", "low data")),
    ("arpu_30d", "ln(1 + coalesce(arpu_30d, 0))", ("高消费", "high-spending"), ("低消费", "low-spending")),
    ("night_call_share", "coalesce(night_call_share, 0)", ("夜间活跃", "night-active"), ("夜间少", "quiet at night")),
    ("competitor_call_share", "coalesce(competitor_call_share, 0)", ("网间通话多", "calls competitors"), ("网内为主", "calls on-net")),
    ("roaming_days", "ln(1 + coalesce(roaming_days, 0))", ("常漫游", "often roaming"), ("不漫游", "stays home")),
    ("active_day_share", "coalesce(active_day_share, 0)", ("天天在用", "active daily"), ("沉默", "mostly silent")),
]
# A fresh fit must lower the within-segment spread by this share to replace the carried-over segments.
# Fresh fits of one demo-city sample land in optima up to 14% apart (12 k-means++ starts: 1.0, 1.069 for
# half of them, 1.094, 1.117, 1.141), so a smaller gain would swap one arbitrary partition for another.
RESHAPE_GAIN = 0.10
# Lloyd steps a carried-over model takes on a new sample. More would let the centroids wander along the
# flat directions of data without sharp clusters for a fraction of a percent less spread: from a model
# fitted on one sample, 40 steps on another sample of the same population kept 71% of subscribers in their
# segment, 5 steps 93%, one step 98% (correlated unclustered data, as in tests/test_tags.py).
CARRY_STEPS = 1
DISTINGUISHING_Z = 0.5  # a centroid this many standard deviations from the mean is worth naming
WORDS_PER_SEGMENT = 3


@dataclass(frozen=True)
class SegmentFit:
    features: list[str]
    mean: np.ndarray  # (f,)
    scale: np.ndarray  # (f,)
    centroids: np.ndarray  # (k, f), standardised
    codes: list[str]  # per centroid row, stable across snapshots
    sizes: np.ndarray  # (k,) members in the sample
    carried: bool = False  # the previous model's segments, moved with the data, rather than a fresh fit


def standardise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = values.mean(axis=0)
    scale = values.std(axis=0)
    scale[scale == 0] = 1.0  # a constant feature carries no information; keep it from dividing by zero
    return (values - mean) / scale, mean, scale


def kmeans(points: np.ndarray, k: int, *, seed: int = 0, iterations: int = 300, restarts: int = 3) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding, best of a few restarts; returns the (k, f) centroids.
    Run to convergence (40 steps left the demo's fits moving), so that a model carried over to the same
    data has nothing left to move."""
    rng = np.random.default_rng(seed)
    k = min(k, len(points))
    fits = [lloyd(points, _plus_plus(points, k, rng), iterations=iterations) for _ in range(restarts)]
    return min(fits, key=lambda centroids: inertia(points, centroids))


def lloyd(points: np.ndarray, centroids: np.ndarray, *, iterations: int) -> np.ndarray:
    """Lloyd's iterations from the given centroids to the nearest local optimum."""
    k = len(centroids)
    columns = np.ascontiguousarray(points.T)  # per-feature sums by bincount read one feature at a time
    for _ in range(iterations):
        labels = nearest(points, centroids)
        counts = np.bincount(labels, minlength=k)
        sums = np.stack([np.bincount(labels, weights=column, minlength=k) for column in columns], axis=1)
        # An emptied cluster keeps its centroid rather than vanishing.
        moved = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centroids)
        # Converged: a smaller move (standardised units) is far below any difference worth describing,
        # and not taking it keeps a model carried over to the same data exactly as it was.
        if np.abs(moved - centroids).max() < 1e-3:
            break
        centroids = moved
    return centroids


def inertia(points: np.ndarray, centroids: np.ndarray) -> float:
    return float(((points - centroids[nearest(points, centroids)]) ** 2).sum())


def _plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centroids = [points[rng.integers(len(points))]]
    distance = ((points - centroids[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = distance.sum()
        index = rng.choice(len(points), p=distance / total) if total > 0 else rng.integers(len(points))
        centroids.append(points[index])
        distance = np.minimum(distance, ((points - points[index]) ** 2).sum(axis=1))
    return np.array(centroids)


def nearest(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of each point's nearest centroid (the points' own squared norms do not change the argmin)."""
    return ((centroids**2).sum(axis=1)[None, :] - 2 * points @ centroids.T).argmin(axis=1)


def fit(values: np.ndarray, features: list[str], k: int, *, previous: SegmentFit | None = None, seed: int = 0) -> SegmentFit:
    """Fit k segments to the sample and give them codes: the previous model's segments moved with the
    data when it has as many, unless a fresh fit explains the sample RESHAPE_GAIN better; a fresh fit
    takes codes from `previous` by centroid."""
    points, mean, scale = standardise(values)
    centroids = kmeans(points, k, seed=seed)
    comparable = previous is not None and previous.features == features
    if comparable and len(previous.codes) == len(centroids):
        carried = lloyd(points, _in_units(previous, mean, scale), iterations=CARRY_STEPS)
        if inertia(points, centroids) >= (1 - RESHAPE_GAIN) * inertia(points, carried):
            sizes = np.bincount(nearest(points, carried), minlength=len(carried))
            return SegmentFit(features, mean, scale, carried, list(previous.codes), sizes, carried=True)
    # Order by size first, so a first model numbers its segments from the largest down.
    sizes = np.bincount(nearest(points, centroids), minlength=len(centroids))
    order = np.argsort(-sizes, kind="stable")
    centroids, sizes = centroids[order], sizes[order]
    codes = [f"segment_{i + 1}" for i in range(len(centroids))]
    if comparable:
        codes = match_codes(centroids, mean, scale, previous)
    return SegmentFit(features, mean, scale, centroids, codes, sizes)


def _in_units(previous: SegmentFit, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The previous model's centroids in this sample's standardised units."""
    return (previous.centroids * previous.scale + previous.mean - mean) / scale


def match_codes(centroids: np.ndarray, mean: np.ndarray, scale: np.ndarray, previous: SegmentFit) -> list[str]:
    """Each new centroid takes the code of the previous centroid it is matched to; extras get new codes."""
    cost = ((centroids[:, None, :] - _in_units(previous, mean, scale)[None, :, :]) ** 2).sum(axis=2)
    rows, columns = linear_sum_assignment(cost)
    codes: list[str | None] = [None] * len(centroids)
    for row, column in zip(rows, columns):
        codes[row] = previous.codes[column]
    used = {int(c.rsplit("_", 1)[1]) for c in codes if c}
    fresh = (n for n in range(1, len(centroids) + len(previous.codes) + 2) if n not in used)
    return [code or f"segment_{next(fresh)}" for code in codes]


def describe(centroid: np.ndarray, features: list[str]) -> tuple[str, str]:
    """The segment's most distinguishing features in words, (Chinese, English)."""
    words = {name: (high, low) for name, _, high, low in BEHAVIOUR}
    strongest = [i for i in np.argsort(-np.abs(centroid)) if abs(centroid[i]) >= DISTINGUISHING_Z][:WORDS_PER_SEGMENT]
    if not strongest:
        return "普通用户", "typical usage"
    # Named in the features' order, not by strength: a re-centred segment keeps its name (and its tag
    # version) when two of its traits swap places.
    chosen = [words[features[i]][0 if centroid[i] > 0 else 1] for i in sorted(strongest)]
    return "·".join(zh for zh, _ in chosen), ", ".join(en for _, en in chosen)


def standardised_sql(fit: SegmentFit, column_sql: dict[str, str]) -> list[str]:
    """DuckDB SQL for each behaviour feature in the model's standardised units (select them as _z0, _z1, ...)."""
    return [f"(({column_sql[name]}) - {mean!r}) / {scale!r}"
            for name, mean, scale in zip(fit.features, fit.mean.tolist(), fit.scale.tolist())]


def distances_sql(fit: SegmentFit) -> str:
    """DuckDB SQL for the list of a row's squared distances to each centroid, over the columns _z0, _z1, ..."""
    distances = [
        " + ".join(f"(_z{i} - {value!r}) * (_z{i} - {value!r})" for i, value in enumerate(centroid.tolist()))
        for centroid in fit.centroids
    ]
    return "[" + ", ".join(distances) + "]"


def nearest_code_sql(fit: SegmentFit, distances_column: str) -> str:
    codes = ", ".join(f"'{c}'" for c in fit.codes)
    return f"[{codes}][list_position({distances_column}, list_min({distances_column}))]"
