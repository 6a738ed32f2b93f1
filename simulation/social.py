"""Who lives with whom and who calls whom in the simulated city: households, flatmates, friend circles, spam callers,
and the call records they leave at the switch.

Every share planted here is a documented choice (docs/simulated-city.md, "Behaviour data"), most resting on a
published figure: China's 2020 census (2.62 people per household), the operators' 2024 subscriber counts (China
Mobile about 56% of mobile lines), the CNNIC and MIIT reports on spam calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# China Mobile's share of the country's mobile lines (1,004 M of 1,790 M at the end of 2024, MIIT): the chance
# that a contact of an ordinary subscriber is on-net.
MARKET_SHARE = 0.56
# Numbers of other networks, by their share of the off-net contacts (China Unicom and China Telecom about 23% and
# 23% of lines, China Broadnet and virtual operators about 2% each; landlines about 8% of the contacts people call).
OFF_NET_BLOCKS = {
    "cu": ([130, 131, 132, 155, 156, 166, 175, 176, 185, 186], 0.42),
    "ct": ([133, 153, 173, 177, 180, 181, 189, 191, 199], 0.42),
    "cbn": ([192], 0.03),
    "mvno": ([162, 167, 170, 171], 0.03),
    "fixed": ([757], 0.10),  # Foshan landlines, 0757 + 8 digits
}
# On-net members of one household: China's households average 2.62 people (2020 census); with 56% of lines on
# China Mobile a household has on average about 1.5 members on-net; the rest of the family is off-net.
HOUSEHOLD_ONNET_SIZES = ([1, 2, 3, 4, 5], [0.40, 0.33, 0.18, 0.07, 0.02])
FLATMATE_SHARE = 0.06  # people in a shared flat (合租) with 2-4 unrelated flatmates on-net
# Off-net members per household (Poisson): families cluster on one network too (Birke and Swann 2006), so a
# household whose members hold lines elsewhere has most of its other members there.
OFF_NET_FAMILY_MEAN = {False: 0.35, True: 2.0}
# Expected calls per week on a tie. Families talk mostly over WeChat and similar apps: only about half of the
# on-net family pairs appear in a week's call records.
WEEKLY_CALLS = {"family": 0.7, "close": 4.0, "friend": 0.6, "flatmate": 0.05}
CLOSE_FRIEND_SHARE = 0.35  # of a person's friend ties, the close ones (frequent, two-way)
SPAM_SHARE = 1 / 2000  # spam and telemarketing numbers (骚扰电话) per subscriber, most off-net
SPAM_CALLS_PER_DAY = (150, 600)
SPAM_ANSWERED = 0.15  # answered, and then for seconds


@dataclass
class HomeGroups:
    """Per person: the home group (household or flat) they share a home with, and its kind."""

    group: np.ndarray  # group index per person (a person alone is a group of one)
    head: np.ndarray  # the person whose home the group shares
    flat: np.ndarray  # bool per person: the group is flatmates, not a family


def home_groups(rng: np.random.Generator, n: int) -> HomeGroups:
    """Consecutive people form households and flats (the simulator's order is unrelated to numbers or ids)."""
    sizes, shares = HOUSEHOLD_ONNET_SIZES
    drawn = rng.choice(sizes, size=n, p=shares)
    flat = rng.random(n) < FLATMATE_SHARE / 3  # groups (averaging 3 people) that are flats
    drawn = np.where(flat, rng.integers(2, 5, n), drawn)
    ends = np.cumsum(drawn)
    count = int(np.searchsorted(ends, n)) + 1
    starts = np.concatenate([[0], ends[: count - 1]])
    group = np.repeat(np.arange(count), np.diff(np.concatenate([starts, [n]])))
    group_is_flat = flat[:count] & (np.diff(np.concatenate([starts, [n]])) > 1)
    return HomeGroups(group=group, head=starts[group], flat=group_is_flat[group])


# A city of 10 M people has about 110 M ties: they are held as small numbers, a kind and a network by their index in
# these, an outside number as an integer (written out as text only for the rows of one block).
TIE_KINDS = np.array(["family", "close", "friend", "flatmate"])
FAMILY, CLOSE, FRIEND, FLATMATE = range(len(TIE_KINDS))
NETWORKS = np.array(["cmcc", *OFF_NET_BLOCKS])
ON_NET = 0


@dataclass
class Ties:
    """Who calls whom. On-net ties join two people; off-net ties join a person to an outside number."""

    a: np.ndarray  # person (int32)
    b: np.ndarray  # person, or -1 for an outside number (int32)
    outside: np.ndarray  # the outside number as an integer (0 for on-net ties; see outside_text)
    network: np.ndarray  # index into NETWORKS (ON_NET for on-net ties)
    kind: np.ndarray  # index into TIE_KINDS
    weekly: np.ndarray  # expected calls per week (float32)
    sms_share: np.ndarray  # of the tie's contacts, the share by SMS (float32)

    def close(self) -> np.ndarray:
        """Family and close friends."""
        return (self.kind == FAMILY) | (self.kind == CLOSE)


@dataclass
class Social:
    groups: HomeGroups
    ties: Ties
    off_net_share: np.ndarray  # per person: the chance a new friend is off-net
    spam_people: np.ndarray  # people whose line is a spam caller
    spam_outside: np.ndarray  # outside spam numbers

    def close_circle_share(self, n: int, holds: np.ndarray) -> np.ndarray:
        """(n, k): per person, the share of their close on-net circle (family and close friends) holding each of the
        k columns of `holds` (n, k); 0 without a close on-net circle."""
        t = self.ties
        close = (t.b >= 0) & t.close()
        a, b = t.a[close], t.b[close]
        ends, peers = np.concatenate([a, b]), np.concatenate([b, a])
        size = np.bincount(ends, minlength=n).astype(float)
        totals = np.stack([np.bincount(ends, weights=holds[peers, j].astype(float), minlength=n) for j in range(holds.shape[1])], axis=1)
        return np.where(size[:, None] > 0, totals / np.maximum(size, 1)[:, None], 0.0)

    def close_circle_off_net(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per person: the close circle's expected weekly calls, the share of them on other networks (NaN without a
        close circle), and the mobile network most of the off-net share is on (an index into NETWORKS; ON_NET when
        none of it is on a mobile network)."""
        t = self.ties
        weight = np.where(t.close(), t.weekly, 0.0)
        total = np.bincount(t.a, weights=weight, minlength=n) + np.bincount(np.maximum(t.b, 0), weights=np.where(t.b >= 0, weight, 0),
                                                                            minlength=n)
        off = np.bincount(t.a, weights=weight * (t.network != ON_NET), minlength=n)
        mobile = np.array([k for k, name in enumerate(NETWORKS) if name in ("cu", "ct", "cbn")])
        by_network = np.stack([np.bincount(t.a, weights=weight * (t.network == k), minlength=n) for k in mobile], axis=1)
        leading = np.where(by_network.max(axis=1) > 0, mobile[by_network.argmax(axis=1)], ON_NET)
        return total, np.where(total > 0, off / np.maximum(total, 1e-9), np.nan), leading.astype(np.uint8)


def outside_numbers(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Numbers of other networks and landlines as integers (a landline without its leading 0), with their network
    (an index into NETWORKS)."""
    names = list(OFF_NET_BLOCKS)
    network = rng.choice(len(names), size=count, p=[OFF_NET_BLOCKS[k][1] for k in names])
    numbers = np.zeros(count, dtype=np.int64)
    for i, name in enumerate(names):
        chosen = network == i
        prefixes = np.array(OFF_NET_BLOCKS[name][0])[rng.integers(0, len(OFF_NET_BLOCKS[name][0]), chosen.sum())]
        low = 2 * 10**7 if name == "fixed" else 0
        numbers[chosen] = prefixes.astype(np.int64) * 10**8 + rng.integers(low, 9 * 10**7 if name == "fixed" else 10**8, chosen.sum())
    return numbers, (network + 1).astype(np.uint8)


def outside_text(numbers: np.ndarray, network: np.ndarray) -> np.ndarray:
    """The outside numbers as dialled: a landline with the 0 of its area code."""
    text = numbers.astype(str)
    fixed = network == list(NETWORKS).index("fixed")
    return np.where(fixed, np.char.add("0", text), text)


def build_social(rng: np.random.Generator, *, n: int, groups: HomeGroups, home: np.ndarray, second_line: np.ndarray,
                 age: np.ndarray) -> Social:
    """Households' ties, flatmates', friend circles (mostly local) and spam callers."""
    parts = []

    def add(a, b, outside, network, kind, weekly, sms_share):
        parts.append([a.astype(np.int32), b.astype(np.int32), outside, network, np.broadcast_to(np.uint8(kind), len(a)),
                      weekly.astype(np.float32), sms_share.astype(np.float32)])

    # Families and flats: every on-net pair of a group, and each household's off-net members with all of it.
    order = np.arange(n)
    for offset in range(1, 5):
        j = order + offset
        same = (j < n) & (groups.group[np.minimum(j, n - 1)] == groups.group)
        a, b = order[same], j[same]
        flat = groups.flat[a]
        for kind, chosen in ((FAMILY, ~flat), (FLATMATE, flat)):
            add(a[chosen], b[chosen], np.zeros(chosen.sum(), np.int64), np.zeros(chosen.sum(), np.uint8), kind,
                rng.gamma(2.0, WEEKLY_CALLS[TIE_KINDS[kind]] / 2.0, chosen.sum()), np.full(chosen.sum(), 0.05))
    heads = np.flatnonzero(np.arange(n) == groups.head)
    members_off = np.where(groups.flat[heads], 0, rng.poisson(np.where(second_line[heads], OFF_NET_FAMILY_MEAN[True],
                                                                       OFF_NET_FAMILY_MEAN[False])))
    owner_group = np.repeat(groups.group[heads], members_off)
    numbers, networks = outside_numbers(rng, len(owner_group))
    # Each off-net family member is a tie of every on-net member of the household.
    group_size = np.bincount(groups.group)
    first = np.searchsorted(groups.group, owner_group)
    reps = group_size[owner_group]
    member = np.repeat(first, reps) + (np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps))
    add(member, np.full(len(member), -1), np.repeat(numbers, reps), np.repeat(networks, reps), FAMILY,
        rng.gamma(2.0, WEEKLY_CALLS["family"] / 2.0, len(member)), np.full(len(member), 0.05))

    # Friends: a heavy-tailed number per person (median about 9, a few social hubs with 40+), mostly local.
    friends = np.clip(np.round(rng.lognormal(np.log(9) - 0.15 * np.clip(age - 45, 0, None) / 10, 0.55, n)), 1, 150).astype(int)
    # Circles cluster on networks (families and friends pick the network their people are on: Birke and Swann 2006,
    # "Network effects and the choice of mobile phone operator"): most subscribers' friends are mostly on-net, and
    # those holding a line on another network too have their circle mostly there. Overall, about 1 - MARKET_SHARE
    # of the friends of the whole base are off-net.
    off_net_share = np.where(second_line, rng.beta(6, 1.2, n), rng.beta(1.5, 4.2, n))
    person = np.repeat(np.arange(n), friends)
    off = rng.random(len(person)) < off_net_share[person]
    # On-net friends: someone living within a few km (people sorted by a 5 km grid of their home), or anyone in the
    # city (one in four). Friends rarely share a building: the chance of a tie falls with distance, not within metres
    # (Lambiotte et al. 2008, "Geographical dispersal of mobile communication networks", Physica A 387).
    grid = (np.floor(home[:, 0] * 20).astype(np.int64) * 100_000 + np.floor(home[:, 1] * 20).astype(np.int64))
    by_place = np.argsort(grid, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[by_place] = np.arange(n)
    on = ~off
    local = rng.random(on.sum()) < 0.75
    near = rank[person[on]] + np.where(rng.random(on.sum()) < 0.5, -1, 1) * rng.integers(1, 600, on.sum())
    anywhere = rng.integers(0, n, on.sum())
    friend = np.where(local, by_place[np.clip(near, 0, n - 1)], anywhere)
    keep = friend != person[on]
    close = rng.random(len(person)) < CLOSE_FRIEND_SHARE
    kind_on = np.where(close[on], CLOSE, FRIEND).astype(np.uint8)[keep]
    a_on, b_on = person[on][keep], friend[keep]
    weekly_on = rng.gamma(2.0, np.where(kind_on == CLOSE, WEEKLY_CALLS["close"], WEEKLY_CALLS["friend"]) / 2.0)
    parts.append([a_on.astype(np.int32), b_on.astype(np.int32), np.zeros(len(a_on), np.int64), np.zeros(len(a_on), np.uint8),
                  kind_on, weekly_on.astype(np.float32), rng.beta(1, 6, len(a_on)).astype(np.float32)])
    numbers, networks = outside_numbers(rng, int(off.sum()))
    kind_off = np.where(close[off], CLOSE, FRIEND).astype(np.uint8)
    weekly_off = rng.gamma(2.0, np.where(kind_off == CLOSE, WEEKLY_CALLS["close"], WEEKLY_CALLS["friend"]) / 2.0)
    parts.append([person[off].astype(np.int32), np.full(int(off.sum()), -1, np.int32), numbers, networks, kind_off,
                  weekly_off.astype(np.float32), rng.beta(1, 6, int(off.sum())).astype(np.float32)])
    del person, off, on, local, near, anywhere, friend, keep, close, numbers, networks

    # One tie per on-net pair: a friend drawn twice, or a friend who is also family, keeps the first (strongest kind).
    # Column by column, each part's column let go once joined: a city of 10 M has about 110 M ties.
    a, b = (np.concatenate([p[i] for p in parts]) for i in (0, 1))
    on = np.flatnonzero(b >= 0)
    _, first = np.unique(np.minimum(a[on], b[on]).astype(np.int64) * n + np.maximum(a[on], b[on]), return_index=True)
    kept = b < 0
    kept[on[first]] = True
    del on, first
    columns = [a[kept], b[kept]]
    del a, b
    for i in range(2, 7):
        columns.append(np.concatenate([p[i] for p in parts])[kept])
        for p in parts:
            p[i] = None
    ties = Ties(*columns)
    spam_people = np.flatnonzero(rng.random(n) < SPAM_SHARE * 0.2)  # a fifth of the spam lines are on-net SIMs
    spam_outside = outside_text(*outside_numbers(rng, max(int(n * SPAM_SHARE * 0.8), 1)))
    return Social(groups=groups, ties=ties, off_net_share=off_net_share, spam_people=spam_people, spam_outside=spam_outside)


# Service numbers that call subscribers: the operator's own (10086 care and offers), banks and utilities, and the
# competitors' (10010, 10000) calling people who also hold one of their lines (win-back and offers).
OWN_SERVICE = np.array(["10086", "1008611", "95588", "95533", "95555", "4008123123", "1065710086"])
COMPETITOR_SERVICE = np.array(["10010", "10000", "10016", "10001"])


def _formatted(rng: np.random.Generator, numbers: np.ndarray) -> np.ndarray:
    """Numbers as switches write them: most national, some with +86 or 86 in front, landlines with a dash."""
    roll = rng.random(len(numbers))
    mobile = np.char.str_len(numbers) == 11
    landline = np.char.startswith(numbers, "0") & (np.char.str_len(numbers) >= 11)
    out = numbers.astype(object)
    out[mobile & (roll < 0.05)] = np.char.add("+86", numbers[mobile & (roll < 0.05)])
    out[mobile & (roll >= 0.05) & (roll < 0.07)] = np.char.add("86", numbers[mobile & (roll >= 0.05) & (roll < 0.07)])
    dash = np.flatnonzero(landline & (roll < 0.3))
    out[dash] = [f"{number[:4]}-{number[4:]}" for number in numbers[dash]]  # landlines are few
    return out.astype(str)


def call_records(rng: np.random.Generator, *, social: Social, lo: int, hi: int, tie_order: np.ndarray, tie_starts: np.ndarray,
                 msisdn: np.ndarray, active: np.ndarray, competitor_caller: np.ndarray, epoch0: int, days: int) -> dict:
    """The call records of people lo..hi (their ties' calls both ways, the spam and service calls they receive)."""
    t = social.ties
    n = len(msisdn)
    ties = tie_order[tie_starts[lo]:tie_starts[hi]]
    calls = rng.poisson(t.weekly[ties] * days / 7)
    tie = np.repeat(ties, calls)
    m = len(tie)
    day = rng.integers(0, days, m)
    family = t.kind[tie] == FAMILY
    # Families call while apart (days: at work, at school, on the way home), not at night when they are home together;
    # friends call from morning to late evening.
    hour = np.where(family, rng.integers(7, 20, m), rng.integers(8, 24, m))
    start = epoch0 + day * 86400 + hour * 3600 + rng.integers(0, 3600, m)
    a, b = t.a[tie], t.b[tie]
    a_first = rng.random(m) < 0.5
    sms = rng.random(m) < t.sms_share[tie]
    answered = rng.random(m) < 0.9
    seconds = np.where(sms | ~answered, 0, np.round(rng.lognormal(np.where(family, np.log(80), np.log(130)), 0.9, m))).astype(np.int64)
    # A call happens only on a day the subscriber's phone is on (and the on-net peer's).
    on = active[a, day] & np.where(b >= 0, active[np.maximum(b, 0), day], True)
    a_number = msisdn[a]
    b_number = np.where(b >= 0, msisdn[np.maximum(b, 0)], outside_text(t.outside[tie], t.network[tie]))
    caller = np.where(a_first, a_number, b_number)[on]
    callee = np.where(a_first, b_number, a_number)[on]
    start, seconds, sms = start[on], seconds[on], sms[on]

    # Spam and telemarketing: lines that call hundreds of numbers a day, few of which answer.
    spam_pool = np.concatenate([msisdn[social.spam_people], social.spam_outside])
    per_day = np.mean(SPAM_CALLS_PER_DAY) * len(spam_pool) * (hi - lo) / n
    received = rng.poisson(per_day * days)
    target = rng.integers(lo, hi, received)
    spam_day = rng.integers(0, days, received)
    spam_on = active[target, spam_day] & ~np.isin(target, social.spam_people)
    target, spam_day = target[spam_on], spam_day[spam_on]
    spam_seconds = np.where(rng.random(len(target)) < SPAM_ANSWERED, np.round(rng.lognormal(np.log(15), 0.7, len(target))), 0)

    # Service numbers: the operator's and banks' on some days; the competitors' for those who hold one of their lines.
    people = np.arange(lo, hi)
    sub, sday = np.nonzero(active[lo:hi] & (rng.random((hi - lo, days)) < np.where(competitor_caller[lo:hi], 0.05, 0.012)[:, None]))
    competitor = competitor_caller[lo:hi][sub] & (rng.random(len(sub)) < 0.6)
    service = np.where(competitor, COMPETITOR_SERVICE[rng.integers(0, len(COMPETITOR_SERVICE), len(sub))],
                       OWN_SERVICE[rng.integers(0, len(OWN_SERVICE), len(sub))])
    service_sms = rng.random(len(sub)) < 0.5

    caller = np.concatenate([caller, spam_pool[rng.integers(0, len(spam_pool), len(target))], service])
    callee = np.concatenate([callee, msisdn[target], msisdn[people[sub]]])
    start = np.concatenate([start, epoch0 + spam_day * 86400 + rng.integers(9 * 3600, 21 * 3600, len(target)),
                            epoch0 + sday * 86400 + rng.integers(9 * 3600, 20 * 3600, len(sub))])
    seconds = np.concatenate([seconds, spam_seconds.astype(np.int64),
                              np.where(service_sms, 0, np.round(rng.lognormal(np.log(60), 0.6, len(sub)))).astype(np.int64)])
    kind = np.concatenate([np.where(sms, "sms", "voice"), np.full(len(target), "voice"), np.where(service_sms, "sms", "voice")])
    # Two records of one pair in the same second are one call: keep the first.
    order = np.lexsort((callee, caller, start))
    caller, callee, start, seconds, kind = caller[order], callee[order], start[order], seconds[order], kind[order]
    repeat = np.zeros(len(caller), bool)
    repeat[1:] = (caller[1:] == caller[:-1]) & (callee[1:] == callee[:-1]) & (start[1:] == start[:-1]) & (kind[1:] == kind[:-1])
    keep = ~repeat
    return {"caller": _formatted(rng, caller[keep]), "callee": _formatted(rng, callee[keep]), "start_time": start[keep],
            "seconds": seconds[keep], "kind": kind[keep]}
