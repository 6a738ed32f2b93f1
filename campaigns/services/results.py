"""A campaign's result: the target group against the control group, in the caller's districts.

Conversion is taking the product (a subscription to it starting between the campaign's start and end
dates, in the current lake) by anyone of the group, contacted or not: the control group is never
contacted, so comparing whole groups measures what the campaign added. Contacts and their outcomes
(contact_results) are counted for the target group beside it.
"""

from __future__ import annotations

from tagging.lake import store
from tagging.models import Region

from ..evaluation import Group, compare
from ..models import Campaign
from .campaigns import campaign_districts, targets_path


def campaign_evaluation(*, campaign: Campaign, user) -> dict:
    districts = campaign_districts(campaign, user)
    subscriptions = store.current_sql("subscriptions")
    contacts = store.current_sql("contact_results")
    took = (f"(SELECT DISTINCT subscriber_id FROM {subscriptions} WHERE product_code = $product "
            f"AND start_date BETWEEN $start AND $end)" if subscriptions else "(SELECT NULL::BIGINT AS subscriber_id WHERE false)")
    contacted = (f"(SELECT subscriber_id, bool_or(outcome = 'converted') AS said_converted FROM {contacts} "
                 f"WHERE campaign = $campaign GROUP BY subscriber_id)" if contacts else
                 "(SELECT NULL::BIGINT AS subscriber_id, NULL::BOOLEAN AS said_converted WHERE false)")
    con = store.reader()
    try:
        rows = con.execute(f"""
            SELECT t.region_code, t."group", count(*) AS members, count(k.subscriber_id) AS converted,
                   count(c.subscriber_id) AS contacted, count(*) FILTER (WHERE c.said_converted) AS reported_converted
            FROM read_parquet('{targets_path(campaign)}') t
            LEFT JOIN {took} k USING (subscriber_id) LEFT JOIN {contacted} c USING (subscriber_id)
            WHERE t.region_code IN (SELECT unnest($districts::VARCHAR[]))
            GROUP BY ALL ORDER BY ALL
        """, {"districts": districts,
              **({"product": campaign.product.code, "start": campaign.start_date, "end": campaign.end_date} if subscriptions else {}),
              **({"campaign": str(campaign.id)} if contacts else {})}).fetchall()
    finally:
        con.close()
    names = dict(Region.objects.filter(code__in=districts).values_list("code", "name"))

    def summary(selected) -> dict:
        groups = {name: {"members": 0, "converted": 0, "contacted": 0, "reported_converted": 0} for name in ("target", "control")}
        for _, group, members, converted, contacted_, reported in selected:
            for key, value in zip(("members", "converted", "contacted", "reported_converted"), (members, converted, contacted_, reported)):
                groups[group][key] += value
        result = compare(Group(groups["target"]["members"], groups["target"]["converted"]),
                         Group(groups["control"]["members"], groups["control"]["converted"]))
        return {**groups, **result.as_dict()}

    return {
        "campaign": campaign.id, "product": campaign.product.code, "period": [str(campaign.start_date), str(campaign.end_date)],
        "overall": summary(rows),
        "by_district": [{"region": code, "name": names.get(code, code), **summary([r for r in rows if r[0] == code])}
                        for code in districts],
    }
