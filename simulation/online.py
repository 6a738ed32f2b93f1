"""What the simulated city's subscribers do online: the DPI signature library's apps, each subscriber's latent
interests, and the daily app usage the operator's xDR records show, with the noise they really have.

Noise planted (shares documented in docs/simulated-city.md, "Behaviour data"): traffic DPI cannot classify
(encrypted, VPN: 10-20% of a subscriber's bytes), installed apps pushing and updating in the background without
being used, phones shared by two family members, tethered laptops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# category: the latent interest's intercept and weights on (value, youth, data appetite, travel), a typical
# session in seconds, seconds a day of an interested user (median), bytes down per second of use.
CATEGORIES = {
    "video": (-0.9, (0.2, 0.4, 0.6, 0.0), 900, 2400, 400_000),
    "short_video": (-0.1, (0.0, 0.5, 0.5, 0.0), 600, 3000, 300_000),
    "game": (-1.4, (0.0, 0.9, 0.4, 0.0), 1200, 2400, 15_000),
    "shopping": (-0.8, (0.3, 0.3, 0.2, 0.0), 300, 900, 60_000),
    "social": (2.0, (0.0, 0.3, 0.2, 0.0), 240, 3600, 40_000),
    "news": (-0.8, (0.2, -0.6, 0.0, 0.0), 300, 900, 30_000),
    "finance": (-1.6, (0.8, -0.2, 0.0, 0.0), 120, 300, 20_000),
    "travel": (-2.2, (0.4, 0.0, 0.0, 1.2), 300, 400, 30_000),
    "navigation": (-1.7, (0.7, -0.1, 0.0, 0.3), 900, 1200, 8_000),
    "music": (-1.2, (0.0, 0.6, 0.3, 0.0), 1200, 1800, 20_000),
    "reading": (-1.9, (0.1, -0.1, 0.0, 0.0), 900, 1800, 5_000),
    "education": (-2.2, (0.2, 0.0, 0.0, 0.0), 900, 1800, 200_000),
}
INTEREST_CATEGORIES = tuple(CATEGORIES)
INTEREST_CUT = 0.0  # a category is one of the subscriber's interests when its latent weight passes this
# app id, name, English name, category: a few of the most used apps of each category, as a DPI library names them.
APPS = [
    ("tencent_video", "腾讯视频", "Tencent Video", "video"), ("iqiyi", "爱奇艺", "iQIYI", "video"),
    ("youku", "优酷", "Youku", "video"), ("migu_video", "咪咕视频", "Migu Video", "video"),
    ("douyin", "抖音", "Douyin", "short_video"), ("kuaishou", "快手", "Kuaishou", "short_video"),
    ("xigua", "西瓜视频", "Xigua Video", "short_video"),
    ("honor_of_kings", "王者荣耀", "Honor of Kings", "game"), ("peace_elite", "和平精英", "Peacekeeper Elite", "game"),
    ("genshin", "原神", "Genshin Impact", "game"),
    ("taobao", "淘宝", "Taobao", "shopping"), ("jd", "京东", "JD.com", "shopping"), ("pinduoduo", "拼多多", "Pinduoduo", "shopping"),
    ("wechat", "微信", "WeChat", "social"), ("qq", "QQ", "QQ", "social"), ("weibo", "微博", "Weibo", "social"),
    ("toutiao", "今日头条", "Toutiao", "news"), ("tencent_news", "腾讯新闻", "Tencent News", "news"),
    ("alipay", "支付宝", "Alipay", "finance"), ("cmb", "招商银行", "China Merchants Bank", "finance"),
    ("tonghuashun", "同花顺", "Tonghuashun", "finance"),
    ("ctrip", "携程旅行", "Trip.com", "travel"), ("railway_12306", "铁路12306", "China Railway 12306", "travel"),
    ("didi", "滴滴出行", "DiDi", "travel"),
    ("amap", "高德地图", "Amap", "navigation"), ("baidu_map", "百度地图", "Baidu Maps", "navigation"),
    ("qq_music", "QQ音乐", "QQ Music", "music"), ("netease_music", "网易云音乐", "NetEase Cloud Music", "music"),
    ("kugou", "酷狗音乐", "Kugou", "music"),
    ("weread", "微信读书", "WeChat Read", "reading"), ("fanqie", "番茄小说", "Fanqie Novel", "reading"),
    ("zuoyebang", "作业帮", "Zuoyebang", "education"), ("yuanfudao", "猿辅导", "Yuanfudao", "education"),
    ("cmcc_app", "中国移动", "China Mobile app", "operator_cmcc"), ("unicom_app", "中国联通", "China Unicom app", "operator_cu"),
    ("telecom_app", "中国电信", "China Telecom app", "operator_ct"),
    ("unidentified", "未识别流量", "Unidentified traffic", "other"), ("vpn", "加密隧道", "Encrypted tunnel (VPN)", "other"),
]
APP_CATEGORY = np.array([a[3] for a in APPS])
SHARED_PHONE_SHARE = 0.05  # phones two family members use (a child on a parent's phone)
TETHERING_SHARE = 0.03  # subscribers who tether a laptop on some days
UNCLASSIFIED_BYTES = (0.10, 0.20)  # share of a subscriber's bytes DPI cannot classify (encrypted, VPN)
INSTALLED_UNUSED = 0.35  # of the categories one is not interested in, the share with an app installed that pushes
# How often one uses a category: interested people from 2 days a week to daily, others now and then (up to about one
# day in eight); per person and category.
INTERESTED_USE = (0.15, 0.95)
CASUAL_USE_MAX = 0.2
# Mini-programs: part of the games, shopping, reading and video some people use runs inside WeChat, which DPI sees as
# social traffic (mini-programs carry much of China's casual games and shopping).
IN_WECHAT = {"game": 0.5, "shopping": 0.5, "reading": 0.5, "video": 0.3}
IN_WECHAT_PEOPLE = 0.2
MISSING_DAYS = 0.03  # subscriber-days without xDR records (probe outages, records lost in transfer)


def catalogue_table() -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in zip(["app_id", "name", "name_en", "category"], zip(*APPS))}


@dataclass
class Interests:
    latent: np.ndarray  # (n, categories)
    favourite: np.ndarray  # (n, categories): the app index one uses most in each category
    shared_with: np.ndarray  # per person: whose interests also use the phone (-1 when not shared)
    tethers: np.ndarray  # bool
    unclassified: np.ndarray  # share of bytes DPI cannot classify
    competitor_app: np.ndarray  # app index of a competitor operator's app one uses (-1 when none)
    use_rate: np.ndarray  # (n, categories): chance a day of using the category
    in_wechat: np.ndarray  # (n, categories): share of the use that runs inside WeChat (mini-programs)

    @property
    def interested(self) -> np.ndarray:
        return self.latent > INTEREST_CUT


def plant_interests(rng: np.random.Generator, *, traits: np.ndarray, age: np.ndarray, second_line: np.ndarray) -> Interests:
    """Latent interests correlated with age, value and the existing traits; a favourite app per category."""
    n = len(age)
    value, youth, data, travel = traits[:, 0], traits[:, 1], traits[:, 2], traits[:, 4]
    drivers = np.column_stack([value, np.clip(youth, -2, 2), data, travel])
    latent = np.column_stack([c[0] + drivers @ np.array(c[1]) for c in CATEGORIES.values()]) + rng.normal(size=(n, len(CATEGORIES)))
    # Parents of school children (30-48) study apps with them; drivers are mostly of working age.
    latent[:, INTEREST_CATEGORIES.index("education")] += np.where((age >= 30) & (age <= 48), 1.6, -1.0)
    latent[:, INTEREST_CATEGORIES.index("navigation")] += np.where((age >= 25) & (age <= 60), 0.4, -1.0)
    latent = latent.astype(np.float32)  # per person and category: small types, a city may have 10 M people
    favourite = np.empty((n, len(CATEGORIES)), dtype=np.int16)
    for j, category in enumerate(INTEREST_CATEGORIES):
        apps = np.flatnonzero(APP_CATEGORY == category)
        favourite[:, j] = apps[np.minimum((rng.random(n) ** 1.5 * len(apps)).astype(int), len(apps) - 1)]
    shared = rng.random(n) < SHARED_PHONE_SHARE
    shared_with = np.where(shared, rng.integers(0, n, n), -1)
    competitor_apps = np.flatnonzero(np.isin(APP_CATEGORY, ["operator_cu", "operator_ct"]))
    competitor_app = np.where(second_line & (rng.random(n) < 0.7), competitor_apps[rng.integers(0, len(competitor_apps), n)], -1)
    interested = latent > INTEREST_CUT
    low, high = INTERESTED_USE
    use_rate = np.where(interested, low + (high - low) * rng.beta(3, 1.5, latent.shape),
                        CASUAL_USE_MAX * rng.beta(1, 4, latent.shape)).astype(np.float32)
    in_wechat = np.zeros(latent.shape, dtype=np.float32)
    for category, share in IN_WECHAT.items():
        j = INTEREST_CATEGORIES.index(category)
        in_wechat[:, j] = np.where(rng.random(n) < IN_WECHAT_PEOPLE, share, 0.0)
    return Interests(latent=latent, favourite=favourite, shared_with=shared_with, tethers=rng.random(n) < TETHERING_SHARE,
                     unclassified=rng.uniform(*UNCLASSIFIED_BYTES, n), competitor_app=competitor_app,
                     use_rate=use_rate, in_wechat=in_wechat)


def app_usage(rng: np.random.Generator, *, interests: Interests, lo: int, hi: int, active: np.ndarray, msisdn: np.ndarray,
              start_date: np.datetime64) -> dict:
    """Daily app usage of people lo..hi: one row per (subscriber, day, app) with any traffic."""
    sub, day = np.nonzero(active[lo:hi] & (rng.random((hi - lo, active.shape[1])) >= MISSING_DAYS))
    sub += lo
    k = len(CATEGORIES)
    interested = interests.interested[sub]
    other = interests.shared_with[sub]
    shared = other >= 0
    # A shared phone carries its second user's interests too.
    interested_any = interested | (shared[:, None] & interests.interested[np.maximum(other, 0)])
    intensity = np.exp(np.clip(interests.latent[sub], -3, 3) * 0.25)
    rate = interests.use_rate[sub]
    rate = np.where(shared[:, None], np.maximum(rate, interests.use_rate[np.maximum(other, 0)]), rate)
    uses = rng.random((len(sub), k)) < rate
    seconds_median = np.array([c[3] for c in CATEGORIES.values()])
    seconds = np.where(interested_any, rng.lognormal(np.log(seconds_median)[None, :], 0.7, (len(sub), k)) * intensity,
                       rng.lognormal(np.log(90), 0.8, (len(sub), k)))
    seconds = np.where(uses, np.minimum(np.round(seconds), 6 * 3600), 0).astype(np.int64)
    # Installed, not used: background pushes (a few KB, no time) and now and then an update (tens of MB).
    installed = ~interested_any & (rng.random((len(sub), k)) < INSTALLED_UNUSED)
    background = installed & ~uses & (rng.random((len(sub), k)) < 0.25)
    # Mini-programs: that part of the time is WeChat's.
    social = INTEREST_CATEGORIES.index("social")
    in_wechat = np.round(seconds * interests.in_wechat[sub]).astype(np.int64)
    seconds -= in_wechat
    seconds[:, social] += in_wechat.sum(axis=1)
    uses[:, social] |= in_wechat.sum(axis=1) > 0
    rate = np.array([c[4] for c in CATEGORIES.values()])
    bytes_down = seconds * rate[None, :] * rng.lognormal(0, 0.4, (len(sub), k))
    update = background & (rng.random((len(sub), k)) < 0.05)
    bytes_down = np.where(background, np.where(update, rng.lognormal(np.log(60e6), 0.6, (len(sub), k)), rng.lognormal(np.log(30e3), 0.8, (len(sub), k))), bytes_down)
    # A tethered laptop on some days: hours of video the handset's user did not watch.
    tether = interests.tethers[sub] & (rng.random(len(sub)) < 0.2)
    video = INTEREST_CATEGORIES.index("video")
    tether_seconds = np.where(tether, np.round(rng.uniform(1800, 3 * 3600, len(sub))), 0).astype(np.int64)
    seconds[:, video] += tether_seconds
    bytes_down[:, video] += tether_seconds * rate[video] * 2
    row, column = np.nonzero((seconds > 0) | (bytes_down > 0))
    app = np.where(rng.random(len(row)) < 0.85, interests.favourite[sub[row], column],
                   interests.favourite[np.maximum(other[row], 0), column])
    s, b = seconds[row, column], bytes_down[row, column]
    session_length = np.array([c[2] for c in CATEGORIES.values()])[column]
    sessions = np.where(s > 0, np.maximum(rng.poisson(s / session_length), 1), rng.integers(0, 2, len(row)))
    # The operators' apps: one's own now and then, a competitor's for those with a line on its network.
    own_app, day_subs = APP_CATEGORY.tolist().index("operator_cmcc"), np.arange(len(sub))
    own = day_subs[rng.random(len(sub)) < 0.08]
    competitor = day_subs[(interests.competitor_app[sub] >= 0) & (rng.random(len(sub)) < 0.15)]
    extra_rows = np.concatenate([own, competitor])
    extra_app = np.concatenate([np.full(len(own), own_app), interests.competitor_app[sub[competitor]]])
    extra_seconds = np.round(rng.lognormal(np.log(60), 0.6, len(extra_rows))).astype(np.int64)
    # What DPI cannot classify: a share of each day's bytes.
    day_bytes = np.bincount(row, weights=b, minlength=len(sub))
    unclassified = interests.unclassified[sub]
    hidden = day_bytes * unclassified / (1 - unclassified)
    unidentified = APP_CATEGORY.tolist().index("other")  # the first "other" app is unclassified traffic
    hidden_rows = np.flatnonzero(hidden > 0)

    rows = np.concatenate([row, extra_rows, hidden_rows])
    apps = np.concatenate([app, extra_app, np.full(len(hidden_rows), unidentified)])
    seconds_all = np.concatenate([s, extra_seconds, np.zeros(len(hidden_rows), np.int64)])
    down = np.concatenate([b, extra_seconds * 20_000.0, hidden[hidden_rows]])
    sessions_all = np.concatenate([sessions, np.ones(len(extra_rows), np.int64), np.zeros(len(hidden_rows), np.int64)])
    # One row per (subscriber, day, app): a shared phone's two users of one app add up.
    key = rows.astype(np.int64) * len(APPS) + apps
    unique, inverse = np.unique(key, return_inverse=True)
    total = lambda values: np.bincount(inverse, weights=values, minlength=len(unique))  # noqa: E731
    row_of, app_of = unique // len(APPS), unique % len(APPS)
    down_total = np.round(total(down)).astype(np.int64)
    up_ratio = np.where(APP_CATEGORY[app_of] == "social", 0.25, 0.04)
    return {
        "msisdn": msisdn[sub[row_of]],
        "date": start_date + day[row_of],
        "app_id": np.array([a[0] for a in APPS])[app_of],
        "sessions": np.round(total(sessions_all)).astype(np.int64),
        "seconds": np.minimum(np.round(total(seconds_all)), 86_400).astype(np.int64),
        "bytes_up": np.round(down_total * up_ratio * rng.lognormal(0, 0.3, len(unique))).astype(np.int64),
        "bytes_down": down_total,
    }
