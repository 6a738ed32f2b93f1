"""The starting tag catalogue, from operator practice. Installed by `manage.py install_tag_catalogue`.

Each description gives the rationale: what marketing does with the tag and why the rule decides it so.
Thresholds are per 30 days, so they hold whatever the snapshot window. Order matters: a tag comes after
the tags its rule uses.
"""

BASIC, CONSUMPTION, BEHAVIOUR, NEED, LIFECYCLE, VALUE, TERMINAL, INTEREST, CIRCLE, INTERNETWORK = (
    "basic", "consumption", "behaviour", "need", "lifecycle", "value", "terminal", "interest", "circle", "internetwork")


def _interest(code: str, name: str, name_en: str, category: str, share: float, why: str) -> dict:
    """An interest tag: the category's apps in real use (a minute or more) on a share of the days with any app
    traffic. Days, not bytes: an installed app that pushes and updates moves bytes without anyone using it. The
    thresholds were chosen on one simulated city (seed 11) and are measured on another (tests/test_behaviour.py)."""
    return _tag(code, name, name_en, INTEREST, f"{category}_day_share >= {share} and app_days >= 5",
                f"{why} Rule: {category} apps used (a minute or more) on {share:.0%} or more of the days with app "
                "traffic, at least 5 such days.")


def _tag(code: str, name: str, name_en: str, category: str, expression: str, description: str) -> dict:
    # An entry may add "requires": the product codes its rule names, without which it is not installed (an operator
    # that sells no Douyin pack gets no tag about it).
    return {"code": code, "name": name, "name_en": name_en, "category": category, "kind": "rule",
            "expression": expression, "enabled": True, "description": description}


STARTING_TAGS = [
    # --- basic attributes
    _tag("young_subscriber", "青年用户", "Young subscriber", BASIC, "age < 30",
         "Under 30 at the as-of date. Youth offers (动感地带, video memberships, game data packs) convert best here."),
    _tag("senior_subscriber", "银发用户", "Senior subscriber", BASIC, "age >= 60",
         "60 or older. Senior plans, family-network offers and simpler handsets; calls rather than app pushes."),
    _tag("long_tenure", "老用户", "Long-tenure subscriber", BASIC, "tenure_months >= 60",
         "Five years or more on the network. Loyalty rewards and retention care; they churn rarely but costly."),
    _tag("gotone_customer", "全球通客户", "GoTone customer", BASIC, 'brand == "全球通"',
         "Customer brand 全球通, the operator's premium business brand with its own service levels."),
    _tag("five_g_plan_holder", "5G套餐用户", "5G plan holder", BASIC, "has_5g_plan",
         "Holds a 5G plan on the as-of date; excluded from 5G plan campaigns, targeted for 5G content."),
    _tag("broadband_holder", "宽带用户", "Home broadband holder", BASIC, "has_broadband",
         "Holds home broadband: a converged (融合) customer, who churns far less than a mobile-only one."),
    # --- consumption level
    _tag("consumption_high", "高消费", "High consumption", CONSUMPTION, "arpu_30d >= 100",
         "ARPU of 100 yuan or more per 30 days: the operator's high tier; premium plans and service."),
    _tag("consumption_mid", "中消费", "Middle consumption", CONSUMPTION, "arpu_30d >= 40 and arpu_30d < 100",
         "ARPU from 40 to 100 yuan per 30 days: the mass market, where plan upgrades move revenue most."),
    _tag("consumption_low", "低消费", "Low consumption", CONSUMPTION, "arpu_30d < 40",
         "ARPU under 40 yuan per 30 days: price-sensitive; low-cost add-ons, or at risk when usage also falls."),
    _tag("over_plan_spender", "套餐外消费高", "Spends beyond the plan", CONSUMPTION,
         "arpu_30d >= 50 and arpu_30d >= plan_fee * 1.5",
         "Pays half again the plan fee or more (out-of-bundle calls, data, roaming): a larger plan would cost "
         "them less, which keeps them; the classic plan-upgrade (套餐升档) audience."),
    # --- value
    _tag("high_value", "高价值用户", "High-value subscriber", VALUE,
         "arpu_30d >= 80 and tenure_months >= 24 and active_day_share >= 0.8",
         "Charge (ARPU >= 80 yuan per 30 days), tenure (two years or more) and stability (active on 80% of days "
         "or more): the subscribers whose loss hurts revenue most; key-account care."),
    _tag("value_tier_high", "高价值客户", "Value tier: high", VALUE, 'value_tier == "high"',
         "The top fifth of active subscribers by value score (spend above all, then tenure, trend and products "
         "held; VALUE_TIER_SHARES): a minority that brings about half the revenue. Retention first, service levels."),
    _tag("value_tier_mid", "中价值客户", "Value tier: mid", VALUE, 'value_tier == "mid"',
         "The next 30% of active subscribers by value score: the upsell base (plan upgrades, converged offers)."),
    _tag("value_tier_low", "低价值客户", "Value tier: low", VALUE, 'value_tier == "low"',
         "The other half of active subscribers by value score, who bring a small share of the revenue: low-cost "
         "channels (SMS, app push) only."),
    # --- communication behaviour
    _tag("comm_active", "通信活跃", "Active communicator", BEHAVIOUR, "active_day_share >= 0.8",
         "Uses the network on at least 80% of the days in the window."),
    _tag("comm_silent", "沉默用户", "Silent subscriber", BEHAVIOUR,
         'status == "active" and active_days >= 1 and active_day_share < 0.35',
         "An active account used on fewer than 35% of days (and at least once): a second SIM or a fading "
         "subscriber; wake-up offers before it turns into churn."),
    _tag("comm_churned", "通信停止", "No communication", BEHAVIOUR, "active_days == 0",
         "No call, SMS or data at all in the window, whatever the account status."),
    _tag("night_active", "夜间积极", "Night-active", BEHAVIOUR,
         "night_call_share >= 0.3 and voice_calls_30d >= 20",
         "A third or more of calls at night (22:00-06:00), with at least 20 calls per 30 days: night-time "
         "packages, video and game memberships; avoid daytime outbound calls."),
    _tag("sms_expert", "短信专家", "SMS expert", BEHAVIOUR, "sms_30d >= 150",
         "150 SMS or more per 30 days, five a day: SMS packages, and a hint of business use."),
    _tag("frequent_traveller", "频繁出差", "Frequent traveller", BEHAVIOUR, "roaming_days >= 4",
         "Roaming on four days or more in the window: roaming packs, business plans, airport lounges."),
    _tag("competitor_caller", "网间通话", "Calls competitors' networks", BEHAVIOUR,
         "competitor_call_share >= 0.3 and voice_calls_30d >= 20",
         "30% or more of calls go to competing operators (with at least 20 calls): their circle is on another "
         "network, a churn risk; family-network and all-network minutes offers."),
    _tag("heavy_data_user", "流量超大户", "Very heavy data user", BEHAVIOUR, "data_mb_30d >= 20480",
         "20 GB or more per 30 days: unlimited and 5G plans, and network quality care."),
    # --- need type
    _tag("need_voice", "语音需求型", "Voice-centric", NEED, "voice_minutes_30d >= 450 and data_mb_30d < 8192",
         "450 call minutes or more per 30 days with moderate data: minutes bundles, HD voice."),
    _tag("need_data", "流量需求型", "Data-centric", NEED, "data_mb_30d >= 8192 and voice_minutes_30d < 300",
         "8 GB or more per 30 days with few calls: data packs and data-rich plans."),
    _tag("need_sms", "短信需求型", "SMS-centric", NEED, "sms_30d >= 60",
         "60 SMS or more per 30 days, well above the typical 15: SMS bundles."),
    # --- lifecycle (tenure and the usage trend)
    _tag("lifecycle_new", "新入网期", "Lifecycle: new", LIFECYCLE, "tenure_months < 6 and active_days >= 1",
         "Joined less than six months ago: onboarding, first-bill care and early add-ons."),
    _tag("lifecycle_growing", "成长期", "Lifecycle: growing", LIFECYCLE,
         "tenure_months >= 6 and voice_trend >= 1.25 and data_trend >= 1.25",
         "Calls and data both up by a quarter or more on the previous period: a good moment for upgrades."),
    _tag("lifecycle_declining", "衰退期", "Lifecycle: declining", LIFECYCLE,
         "tenure_months >= 6 and voice_trend < 0.75 and data_trend < 0.75",
         "Calls and data both down by a quarter or more on the previous period: retention offers now."),
    _tag("lifecycle_at_risk", "流失预警", "Lifecycle: at risk", LIFECYCLE,
         'status == "active" and tenure_months >= 6 and (days_since_last_use >= 7 or '
         "(voice_trend < 0.6 and data_trend < 0.6))",
         "An active account unused for a week at the end of the window, or with calls and data down by 40% "
         "or more: the churn warning; retention calls within days."),
    _tag("lifecycle_churned", "已流失", "Lifecycle: churned", LIFECYCLE,
         'status == "closed" or (status == "suspended" and active_days == 0)',
         "Closed, or suspended with no use in the window: win-back lists only."),
    _tag("lifecycle_stable", "稳定期", "Lifecycle: stable", LIFECYCLE,
         "tenure_months >= 6 and comm_active and not lifecycle_growing and not lifecycle_declining "
         "and not lifecycle_at_risk and not lifecycle_churned",
         "Six months or more on the network, active, and neither growing, declining, at risk nor churned."),
    _tag("high_value_at_risk", "高价值流失预警", "High value at risk", VALUE, "high_value and lifecycle_at_risk",
         "High-value subscribers with a churn warning: the first list for the retention team."),
    # --- marketing needs (upsell and care)
    _tag("sms_pack_upsell", "短信包升级候选", "SMS-pack upsell candidate", NEED,
         "sms_30d >= 300 and sms_package_fee < 20",
         "300 SMS or more per 30 days on no or a small SMS package (under 20 yuan): a bigger SMS package "
         "saves them money and keeps the revenue."),
    _tag("data_heavy_no_pack", "流量大户无流量包", "Data-heavy without a data package", NEED,
         "data_mb_30d >= 10240 and not has_data_pack and not has_5g_plan",
         "10 GB or more per 30 days with neither a data pack nor a 5G plan: paying out-of-bundle rates; "
         "the data pack or 5G plan offer."),
    _tag("silent_wakeup", "沉默唤醒候选", "Silent-subscriber wake-up candidate", NEED,
         "comm_silent and tenure_months >= 12 and not marketing_opt_out",
         "Silent subscribers of a year's standing or more who accept marketing: wake-up offers (free data, "
         "bill credit) bring a share back before they leave."),
    _tag("roaming_pack_candidate", "漫游包候选", "Roaming-pack candidate", NEED,
         "frequent_traveller and not has_roaming_pack",
         "Frequent travellers without a roaming pack."),
    _tag("family_plan_candidate", "家庭网候选", "Family-network candidate", NEED,
         "tenure_months >= 24 and onnet_call_share >= 0.7 and not has_family_plan",
         "Mostly on-net calls, two years or more on the network, no family network: the circle is already "
         "here, the family plan binds it."),
    _tag("broadband_candidate", "宽带候选", "Broadband candidate", NEED,
         "not has_broadband and data_mb_30d >= 8192 and age >= 25 and age < 55",
         "Working-age heavy data users without home broadband: the converged (融合) offer."),
    # --- terminal (from the terminal snapshot library)
    _tag("phone_enthusiast", "手机发烧友", "Phone enthusiast", TERMINAL,
         "handset_changes_12m >= 2 or handset_tier == 'flagship'",
         "Two handset changes or more in 12 months, or a flagship in hand: first in line for new-model "
         "launches, trade-in offers and contract handsets (合约机)."),
    _tag("brand_loyalist", "品牌爱好者", "Brand loyalist", TERMINAL, "brand_streak >= 3",
         "Three handsets or more in a row of the same brand: offer that brand's next model, not a rival's."),
    _tag("five_g_handset_no_plan", "5G终端未办5G套餐", "5G handset without a 5G plan", TERMINAL,
         "has_5g_handset and not has_5g_plan and not is_knockoff",
         "The handset already supports 5G but the plan does not: the cheapest 5G plan upsell there is "
         "(no new handset needed)."),
    _tag("ageing_handset", "终端换机窗口期", "Ageing handset", TERMINAL, "handset_overdue",
         "The handset in use is older than the subscriber's own average change cycle: likely to change "
         "soon; a contract handset now keeps them on the network."),
    _tag("legacy_handset_heavy_data", "2G/3G终端高流量", "2G/3G handset with heavy data use", TERMINAL,
         "handset_network in ['2G', '3G'] and data_mb_30d >= 1024",
         "A 2G/3G handset and 1 GB or more per 30 days: a poor experience on an old network; a 4G/5G "
         "handset upgrade, and a step towards retiring the old network."),
    _tag("knockoff_user", "山寨机用户", "Knock-off handset user", TERMINAL, "is_knockoff",
         "The handset in use is a knock-off (山寨机): unknown TAC, failed check digit, wrong brand or a cloned "
         "TAC. Handset features may be wrong for them; genuine-handset trade-in offers."),
    # --- interests (上网轨迹): what subscribers do online, from DPI/xDR app usage
    _interest("video_lover", "视频达人", "Video lover", "video", 0.3,
              "Long-form video (Tencent Video, iQIYI, Youku, Migu) several days a week: video memberships and "
              "directional video data packs."),
    _interest("short_video_fan", "短视频达人", "Short-video fan", "short_video", 0.25,
              "Douyin, Kuaishou and the like most days: the Douyin directional pack and data upgrades."),
    _interest("mobile_gamer", "手游玩家", "Mobile gamer", "game", 0.25,
              "Plays mobile games (Honor of Kings, Peacekeeper Elite...) regularly: game data packs, low-latency 5G."),
    _interest("online_shopper", "网购达人", "Online shopper", "shopping", 0.25,
              "Shops on Taobao, JD or Pinduoduo regularly: payment-linked offers and e-commerce co-marketing."),
    _interest("finance_user", "理财用户", "Finance app user", "finance", 0.25,
              "Banking, payment and investment apps regularly: financial co-marketing, the operator's payment services."),
    _interest("travel_planner", "出行达人", "Travel app user", "travel", 0.25,
              "Trip.com, 12306 and ride-hailing regularly: roaming packs, travel insurance and partner offers."),
    _interest("driver", "有车一族", "Driver (navigation-heavy)", "navigation", 0.25,
              "Navigation apps most weeks, the mark of a car owner: in-car data, car insurance and ETC partner offers."),
    _interest("music_lover", "音乐达人", "Music lover", "music", 0.25,
              "Streams music regularly: music memberships and the colour ring-back tone."),
    _interest("reader", "阅读爱好者", "Reader", "reading", 0.25,
              "Reads novels and books on the phone regularly: reading memberships (和阅读)."),
    _interest("education_parent", "在线教育用户", "Online education user", "education", 0.25,
              "Homework and tutoring apps regularly, usually parents of school children: family and broadband offers."),
    _interest("news_reader", "资讯达人", "News reader", "news", 0.25,
              "News apps regularly: content partnerships; SMS and push news services."),
    _tag("competitor_app_user", "使用异网运营商APP", "Uses a competitor operator's app", INTEREST, "competitor_app_days >= 2",
         "Opened China Unicom's or China Telecom's own app on two days or more: they very likely hold a line there "
         "(dual SIM). Retention and a second-line offer before they move their main number."),
    _tag("douyin_heavy_no_pack", "抖音重度用户未订定向流量包", "Heavy Douyin user without its data pack", NEED,
         'short_video_top_app == "douyin" and short_video_minutes_30d >= 1200 and not has_douyin_pack',
         "Twenty hours a month or more of short video, mostly Douyin, without the Douyin directional pack: the pack "
         "makes that traffic cheap, the classic app-tag sale (定向流量包).") | {"requires": ("douyin_pack",)},
    _tag("tencent_video_heavy_no_pack", "腾讯视频重度用户未订定向流量包", "Heavy Tencent Video user without its data pack", NEED,
         'video_top_app == "tencent_video" and video_minutes_30d >= 900 and not has_video_pack',
         "Fifteen hours a month or more of long video, mostly Tencent Video, without the Tencent Video directional pack.") | {"requires": ("video_pack",)},
    _tag("gamer_no_pack", "手游玩家未订游戏定向流量包", "Mobile gamer without the game data pack", NEED,
         "mobile_gamer and not has_game_pack",
         "A regular mobile gamer without the game directional pack: games want low latency and data that does not run out.") | {"requires": ("game_pack",)},
    # --- call circles (交往圈): whom subscribers call, from call records
    _tag("social_butterfly", "社交达人", "Large circle", CIRCLE, "circle_size >= 25",
         "Twenty-five or more people with contacts both ways in the window: word of mouth travels through them; "
         "referral campaigns and group offers."),
    _tag("opinion_leader", "意见领袖", "Opinion leader", CIRCLE, "centrality_percentile >= 95 and circle_size >= 10",
         "Among the 5% most central in the on-net call graph (PageRank over two-way ties: a spam line calling "
         "thousands has none) with ten or more people in the circle: seed them first when a product spreads by "
         "word of mouth (the published MMS case: contacts' use was the strongest predictor of take-up)."),
    _tag("family_circle_member", "家庭圈成员", "Family-circle member", CIRCLE, "in_household",
         "Lives with other subscribers of the operator (same home cell at night, in contact, not calling each "
         "other at night): family network, shared data and converged broadband offers."),
    _tag("household_no_family_plan", "三人以上家庭未办家庭网", "Household of three without a family plan", CIRCLE,
         "household_size >= 3 and not has_family_plan",
         "Three or more of the operator's subscribers in one household and no family network: the family plan "
         "binds the whole household at once."),
    _tag("offnet_circle", "异网交往圈", "Circle mostly off-net", CIRCLE, "close_circle_offnet_share > 0.5",
         "More than half of the close circle's contacts are with other networks or landlines: the circle's pull is "
         "elsewhere, a churn risk since number portability; on-net family and friend offers pull it back."),
    # --- inter-network calling (网间通话)
    _tag("offnet_frequent", "异网高频交往", "Frequent calls to other networks", INTERNETWORK,
         "competitor_peers >= 5 and offnet_contact_share >= 0.4",
         "Five or more people on competing mobile networks in the circle and 40% or more of the contacts off-net: "
         "inter-network settlement costs, and a circle a competitor can win."),
    _tag("offnet_rising", "异网通话占比上升", "Rising off-net share", INTERNETWORK, "offnet_share_change >= 0.15",
         "The off-net share of contacts rose by 15 points or more from the previous period to this one: people they "
         "talk to moved, or they are moving their life to another line."),
    _tag("competitor_service_contacted", "竞争对手客服来电", "Called by a competitor's service number", INTERNETWORK,
         "competitor_service_contacts >= 1",
         "Called or texted by 10010, 10000 or another competitor's service number: a competitor is courting them "
         "(or they already hold a line there); a retention call now."),
    # --- potential customers of a product: the top three deciles of its propensity model, or (also in a
    # run that fitted none, whose deciles are empty) its audience rule
    _tag("five_g_potential", "5G潜在客户", "5G plan potential", NEED,
         "not has_5g_plan and (propensity_5g_plan >= 8 or data_mb_30d >= 6144 and arpu_30d >= 58)",
         "The 5G plan's propensity model puts them in its top three deciles, or 6 GB or more a month and an ARPU "
         "of 58 yuan or more without a 5G plan: the 5G plan costs them little more than they pay now and their "
         "usage is where 5G speed shows."),
    _tag("broadband_potential", "宽带潜在客户", "Broadband potential", NEED,
         "not has_broadband and (propensity_broadband >= 8 or tenure_months >= 24 and age >= 25 and age < 60 "
         "and arpu_30d >= 50)",
         "Top three deciles of the broadband propensity model, or settled working-age households (two years or "
         "more on the network, ARPU 50+) without home broadband: "
         "the converged plan bundles it with their mobile."),
    _tag("video_vip_potential", "视频会员潜在客户", "Video membership potential", NEED,
         "not has_video_vip and (propensity_video_vip >= 8 or age < 40 and data_mb_30d >= 4096)",
         "Top three deciles of the video membership propensity model, or under 40 with 4 GB or more a month and "
         "no video membership: they already stream; the membership "
         "with directed data makes it cheaper."),
    _tag("cloud_drive_potential", "和彩云潜在客户", "Cloud drive potential", NEED,
         "not has_cloud_drive and (propensity_cloud_drive >= 8 or handset_tier in ['high', 'flagship'] "
         "and data_mb_30d >= 2048)",
         "Top three deciles of the cloud drive propensity model, or high-end handsets full of photos and 2 GB or "
         "more a month without the cloud drive."),
]

# Each product's customer classes (demand tag, potential tag); admins can change them on the product.
PRODUCT_CLASSES = {
    "5g_plan": ("five_g_handset_no_plan", "five_g_potential"),
    "data_pack": ("data_heavy_no_pack", None),
    "sms_pack": ("sms_pack_upsell", None),
    "roaming_pack": ("roaming_pack_candidate", None),
    "family_plan": ("family_plan_candidate", None),
    "broadband": ("broadband_candidate", "broadband_potential"),
    "video_vip": (None, "video_vip_potential"),
    "cloud_drive": (None, "cloud_drive_potential"),
}
