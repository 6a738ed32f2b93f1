"""Handsets: a TAC catalogue of the brands common in China, IMEIs with Luhn check digits, knock-offs."""

from __future__ import annotations

import numpy as np

TIERS = ["low", "mid", "high", "flagship"]
# brand, model, release year, tier, network, os, price (yuan), popularity
MODELS = [
    ("Huawei", "Mate 60 Pro", 2023, "flagship", "5G", "HarmonyOS", 6999, 9),
    ("Huawei", "Mate 70", 2024, "flagship", "5G", "HarmonyOS", 5499, 7),
    ("Huawei", "Pura 70", 2024, "high", "5G", "HarmonyOS", 5499, 6),
    ("Huawei", "nova 12", 2023, "mid", "5G", "HarmonyOS", 2999, 8),
    ("Huawei", "Enjoy 70", 2023, "low", "4G", "HarmonyOS", 1199, 6),
    ("Huawei", "P40", 2020, "high", "5G", "Android", 4488, 4),
    ("Apple", "iPhone 16 Pro", 2024, "flagship", "5G", "iOS", 7999, 9),
    ("Apple", "iPhone 16", 2024, "high", "5G", "iOS", 5999, 8),
    ("Apple", "iPhone 15", 2023, "high", "5G", "iOS", 5999, 9),
    ("Apple", "iPhone 13", 2021, "high", "5G", "iOS", 5199, 7),
    ("Apple", "iPhone 11", 2019, "mid", "4G", "iOS", 4999, 4),
    ("Xiaomi", "Xiaomi 14", 2023, "flagship", "5G", "Android", 3999, 6),
    ("Xiaomi", "Redmi K70", 2023, "high", "5G", "Android", 2499, 6),
    ("Xiaomi", "Redmi Note 13", 2023, "mid", "5G", "Android", 1199, 9),
    ("Xiaomi", "Redmi 13C", 2023, "low", "4G", "Android", 699, 6),
    ("OPPO", "Find X7", 2024, "flagship", "5G", "Android", 3999, 3),
    ("OPPO", "Reno 11", 2023, "mid", "5G", "Android", 2499, 7),
    ("OPPO", "A2", 2023, "low", "5G", "Android", 1299, 6),
    ("OPPO", "A57", 2022, "low", "4G", "Android", 1099, 4),
    ("vivo", "X100", 2023, "flagship", "5G", "Android", 3999, 4),
    ("vivo", "S18", 2023, "mid", "5G", "Android", 2499, 7),
    ("vivo", "Y36", 2023, "low", "5G", "Android", 1299, 6),
    ("vivo", "Y33s", 2021, "low", "4G", "Android", 1099, 3),
    ("Honor", "Magic6", 2024, "flagship", "5G", "Android", 4399, 3),
    ("Honor", "Honor 100", 2023, "mid", "5G", "Android", 2499, 6),
    ("Honor", "Play 8T", 2024, "low", "5G", "Android", 1199, 5),
    ("Samsung", "Galaxy S24", 2024, "flagship", "5G", "Android", 5999, 2),
    ("Samsung", "Galaxy A54", 2023, "mid", "5G", "Android", 2399, 1),
    ("realme", "GT Neo5", 2023, "mid", "5G", "Android", 2199, 3),
    ("realme", "C55", 2023, "low", "4G", "Android", 999, 2),
    ("OnePlus", "OnePlus 12", 2024, "flagship", "5G", "Android", 4299, 2),
    ("OnePlus", "Ace 3", 2024, "high", "5G", "Android", 2599, 2),
    ("ZTE", "Axon 50", 2023, "mid", "5G", "Android", 1999, 1),
    ("ZTE", "Blade A73", 2022, "low", "4G", "Android", 799, 1),
    ("Nokia", "105", 2019, "low", "2G", "Feature", 149, 2),
    ("Nokia", "6300 4G", 2020, "low", "4G", "Feature", 399, 1),
    ("守护宝", "K230", 2021, "low", "4G", "Feature", 199, 2),
    ("ZTE", "K1", 2018, "low", "3G", "Feature", 129, 1),  # ZTE (中兴) makes feature phones too: one brand
]
FIVE_G = np.array([m[4] == "5G" for m in MODELS])
TIER_OF = np.array([TIERS.index(m[3]) for m in MODELS])
PRICE_OF = np.array([m[6] for m in MODELS])


def tac_catalogue(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The catalogue (1-4 TACs per model, real-looking 8-digit TACs) and each TAC's model index."""
    per_model = rng.integers(1, 5, len(MODELS))
    model_of_tac = np.repeat(np.arange(len(MODELS)), per_model)
    tacs = rng.choice(np.arange(35_000_000, 87_000_000), size=len(model_of_tac), replace=False)
    table = {
        "tac": np.char.zfill(tacs.astype(str), 8),
        "brand": np.array([MODELS[i][0] for i in model_of_tac]),
        "model": np.array([MODELS[i][1] for i in model_of_tac]),
        "release_year": np.array([MODELS[i][2] for i in model_of_tac]),
        "tier": np.array([MODELS[i][3] for i in model_of_tac]),
        "network": np.array([MODELS[i][4] for i in model_of_tac]),
        "os": np.array([MODELS[i][5] for i in model_of_tac]),
        "price_yuan": np.array([MODELS[i][6] for i in model_of_tac]),
    }
    return table, model_of_tac


def choose_models(rng: np.random.Generator, preferred_tier: np.ndarray) -> np.ndarray:
    """A model index per subscriber: a model of the preferred tier (or one either side), by popularity."""
    tier = np.clip(preferred_tier + rng.choice([-1, 0, 0, 0, 1], size=len(preferred_tier)), 0, 3)
    chosen = np.empty(len(tier), dtype=np.int64)
    popularity = np.array([m[7] for m in MODELS], dtype=float)
    for t in range(len(TIERS)):  # four tiers, not a loop over subscribers
        members = np.flatnonzero(TIER_OF == t)
        mask = tier == t
        chosen[mask] = rng.choice(members, size=mask.sum(), p=popularity[members] / popularity[members].sum())
    return chosen


def luhn_digit(body: np.ndarray) -> np.ndarray:
    """The Luhn check digit of 14-digit IMEI bodies (array of int64)."""
    check = np.empty(len(body), dtype=np.int64)
    for lo in range(0, len(body), 1_000_000):  # 14 digits per body at once: a part at a time for a city of millions
        digits = (body[lo:lo + 1_000_000, None] // 10 ** np.arange(13, -1, -1)) % 10
        doubled = digits[:, 1::2] * 2
        total = digits[:, 0::2].sum(axis=1) + (doubled // 10 + doubled % 10).sum(axis=1)
        check[lo:lo + 1_000_000] = (10 - total % 10) % 10
    return check


def make_imeis(rng: np.random.Generator, tacs: np.ndarray, *, bad_check_digit: np.ndarray | None = None) -> np.ndarray:
    """15-digit IMEIs as integers: TAC + 6-digit serial + Luhn digit (deliberately wrong where bad_check_digit)."""
    body = tacs.astype(np.int64) * 1_000_000 + rng.integers(0, 1_000_000, len(tacs))
    check = luhn_digit(body)
    if bad_check_digit is not None:
        check = np.where(bad_check_digit, (check + rng.integers(1, 10, len(tacs))) % 10, check)
    return body * 10 + check


def imei_text(imeis: np.ndarray) -> np.ndarray:
    """IMEIs as the 15 digits networks report (held as integers: a city of 10 M has tens of millions)."""
    return np.char.zfill(imeis.astype(str), 15)


# Knock-offs that reuse a real model's TAC and report a model (or a brand) of their own: one cloned TAC
# shows up with many model names, or with a brand the catalogue does not give it.
CLONED_REPORTS = [
    ("Huawei", "Mate 60 Pro Max"), ("Huawei", "Mate X6 mini"), ("Huawei", "P70 Ultra 5G"), ("Apple", "iPhone 16 Pro Mini"),
    ("Apple", "iPhone 15 Ultra"), ("Huawie", "Mate 60 Pro"), ("Appel", "iPhone 16"), ("Xiaomi", "Mi 15 Pro Max"),
]
UNKNOWN_MAKERS = [("GooPhone", "X9"), ("Soyes", "XS11"), ("HOTWAV", "Cyber 7"), ("Xgody", "N11")]
HISTORY_DAYS = 3 * 365  # how far back the simulated IMEI observations reach before the window


def models_of_brand_near_tier(rng: np.random.Generator, brands: np.ndarray, tiers: np.ndarray) -> np.ndarray:
    """A model of each given brand, preferring the given tier (brand-loyal replacements)."""
    brand_of = np.array([m[0] for m in MODELS])
    chosen = np.empty(len(brands), dtype=np.int64)
    popularity = np.array([m[7] for m in MODELS], dtype=float)
    for brand in np.unique(brands):  # a dozen brands, not a loop over subscribers
        rows = np.flatnonzero(brands == brand)
        members = np.flatnonzero(brand_of == brand)
        closeness = np.exp(-np.abs(TIER_OF[members][None, :] - tiers[rows][:, None]))
        weights = closeness * popularity[members][None, :]
        cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
        pick = (rng.random(len(rows))[:, None] > cumulative).sum(axis=1)
        chosen[rows] = members[np.minimum(pick, len(members) - 1)]
    return chosen
