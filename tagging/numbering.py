"""China's numbering plan (号段) as a switch writes numbers: normalising a dialled number and telling its network.
Pure: builds DuckDB SQL, no Django.

Call records name numbers of every network. The network of a mobile number comes from its first three digits
(four where a block is split), as the MIIT allocates them; service numbers (10086, 95xxx, 400...) and landlines
(0 + area code) have their own shapes. A number that fits none of them is malformed.
"""

from __future__ import annotations

from .lake.sql import literal

# Mobile blocks by operator (MIIT allocations as of 2024). Virtual operators (转售) have their own blocks:
# 162 (on China Telecom), 165 (China Mobile), 167 and 171 (China Unicom), 170 (all three).
MOBILE_BLOCKS: dict[str, tuple[str, ...]] = {
    "cmcc": ("134", "135", "136", "137", "138", "139", "147", "148", "150", "151", "152", "157", "158", "159", "172",
             "178", "182", "183", "184", "187", "188", "195", "197", "198"),
    "cu": ("130", "131", "132", "145", "146", "155", "156", "166", "175", "176", "185", "186", "196"),
    "ct": ("133", "149", "153", "173", "174", "177", "180", "181", "189", "190", "191", "193", "199"),
    "cbn": ("192",),
    "mvno": ("162", "165", "167", "170", "171"),
}
# Each operator's customer-service and value-added numbers (10086/1008x, 10010/1001x, 10000/1000x, 10099).
SERVICE_PREFIXES: dict[str, tuple[str, ...]] = {
    "service_cmcc": ("1008",),
    "service_cu": ("1001",),
    "service_ct": ("1000",),
    "service_cbn": ("10099",),
}
# Every network a number can be on; what features and the circle listing name.
NETWORKS = (*MOBILE_BLOCKS, "fixed", "international", *SERVICE_PREFIXES, "service")
NETWORK_LABELS = {
    "cmcc": ("中国移动", "China Mobile"), "cu": ("中国联通", "China Unicom"), "ct": ("中国电信", "China Telecom"),
    "cbn": ("中国广电", "China Broadnet"), "mvno": ("虚拟运营商", "Virtual operator"), "fixed": ("固定电话", "Landline"),
    "international": ("国际", "International"), "service_cmcc": ("移动服务号码", "China Mobile service number"),
    "service_cu": ("联通服务号码", "China Unicom service number"), "service_ct": ("电信服务号码", "China Telecom service number"),
    "service_cbn": ("广电服务号码", "China Broadnet service number"), "service": ("服务号码", "Service number"),
}
# Prefixes switches put before the number: the country code, and the IP long-distance access codes
# (17951/12593 China Mobile, 17911 China Unicom, 17909 China Telecom).
_IP_ACCESS = ("17951", "12593", "17911", "17909")


def normalised_sql(raw: str) -> str:
    """DuckDB expression: the number in its national form (13812345678, 075783001234, 10086, 00 + digits
    abroad), or NULL when it is not a number at all. `raw` is trimmed text."""
    digits = f"regexp_replace({raw}, '[ ()\\-.]', '', 'g')"
    # Country code: +86 / 0086 / 86 before a national number (a landline's area code then loses its 0).
    national = (
        f"regexp_replace(regexp_replace({digits}, '^(\\+86|0086)', ''), "
        f"'^86(1[3-9][0-9]{{9}}|[2-9][0-9]{{8,10}})$', '\\1')"
    )
    ip_access = "|".join(_IP_ACCESS)
    without_access = f"regexp_replace({national}, '^({ip_access})(1[3-9][0-9]{{9}}|0[1-9][0-9]{{8,10}})$', '\\2')"
    return (
        f"CASE WHEN regexp_full_match({digits}, '\\+?[0-9]+') THEN "
        # A landline written with the country code and no 0: +86 757 83001234.
        f"CASE WHEN regexp_full_match({digits}, '(\\+86|0086|86)[2-9][0-9]{{8,10}}') THEN '0' || {without_access} "
        f"WHEN starts_with({without_access}, '+') THEN '00' || substr({without_access}, 2) "
        f"ELSE {without_access} END END"
    )


def network_sql(number: str) -> str:
    """DuckDB expression: the network (one of NETWORKS) of a normalised number, or NULL when it is malformed."""
    mobile = " ".join(
        f"WHEN substr({number}, 1, 3) IN ({', '.join(literal(p) for p in blocks)}) THEN {literal(network)}"
        for network, blocks in MOBILE_BLOCKS.items()
    )
    service = " ".join(
        f"WHEN {' OR '.join(f'starts_with({number}, {literal(p)})' for p in prefixes)} THEN {literal(network)}"
        for network, prefixes in SERVICE_PREFIXES.items()
    )
    return (
        f"CASE WHEN regexp_full_match({number}, '1[3-9][0-9]{{9}}') THEN CASE {mobile} END "
        f"WHEN regexp_full_match({number}, '0[1-9][0-9]{{8,10}}') THEN 'fixed' "
        f"WHEN regexp_full_match({number}, '00[1-9][0-9]{{5,14}}') AND NOT starts_with({number}, '0086') THEN 'international' "
        # Operators' own numbers (1000x-1009x), bank, utility and government hotlines (95xxx, 96xxx, 12xxx),
        # 400/800 numbers, SMS ports (106...), emergency numbers (110, 119, 120, 122).
        f"WHEN regexp_full_match({number}, '(10[0-9]{{3,6}}|9[56][0-9]{{3,4}}|12[0-9]{{3}}|[48]00[0-9]{{7}}|106[0-9]{{5,17}}|11[0-9]|12[0-9])') "
        f"THEN CASE {service} ELSE 'service' END END"
    )
