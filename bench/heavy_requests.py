"""The heaviest single requests a signed-in user can send, each in a process of its own: wall time and how much
the process grew, against a light request measured the same way in this run.

    python bench/heavy_requests.py [--subscribers 1000000] [--days 7] [--city FOLDER]

Goal (issue 17, item 2): no request of any role other than a streaming export makes a web process grow by
more than 300 MB or run longer than 5 s; every refusal of an oversized request answers within a second.
The reference is GET /api/v1/regions/ (what any page costs at least).
"""

import json
import os
import statistics
import subprocess
import sys
from datetime import date

from _setup import ROOT, Timer, city_arguments, city_folder, django_in_scratch, ingest_city

DATASETS = ["regions", "products", "tac_catalogue", "cells", "subscribers", "subscriptions", "usage_daily",
            "events", "imei_observations", "stays"]
CONTINENT = {"type": "Polygon", "coordinates": [[[70, 15], [135, 15], [135, 53], [70, 53], [70, 15]]]}


def rss_mb(field: str = "VmRSS") -> float:
    """Resident memory now (VmRSS) or at its highest (VmHWM, which unlike ru_maxrss starts afresh at exec)."""
    with open(f"/proc/{os.getpid()}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field)) / 1024


def measured(who: str, method: str, url: str, body=None) -> tuple[int, float, float]:
    """(status, seconds, MB the process grew) of one request, answered in a fresh process of its own (as a web
    worker would), after a light request has warmed it up."""
    spec = json.dumps({"who": who, "method": method, "url": url, "body": body})
    done = subprocess.run([sys.executable, __file__, "--measure"], input=spec, env=os.environ, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return tuple(json.loads(done.stdout.strip().splitlines()[-1]))


def measure(spec: dict) -> None:
    """In the child: sign in, warm up, then the request; print [status, seconds, MB grown] as JSON."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username=spec["who"]))
    assert client.get("/api/v1/regions/").status_code == 200
    before = rss_mb()
    with Timer() as timer:
        body = spec["body"]
        answer = getattr(client, spec["method"])(spec["url"], json.dumps(body), content_type="application/json") \
            if body is not None else getattr(client, spec["method"])(spec["url"])
        if getattr(answer, "streaming", False):
            for _ in answer.streaming_content:
                pass
    grew = rss_mb("VmHWM") - before
    print(json.dumps([answer.status_code, timer.seconds, grew]))


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:
        measure(json.loads(sys.stdin.read()))
        return
    parser = city_arguments()
    args = parser.parse_args()
    scratch = django_in_scratch("bench-requests-")

    from django.contrib.auth import get_user_model

    from microarea.models import MicroArea
    from microarea.services.imports import import_micro_areas
    from microarea.services.micro_areas import create_micro_area
    from tagging.models import StaffProfile
    from tagging.services.accounts import assign_role
    from tagging.services.snapshots import start_snapshot_run
    from tagging.services.tags import install_starting_catalogue

    city = city_folder(args, scratch, date(2026, 10, 31))
    ingest_city(city, DATASETS, report=False)
    import_micro_areas(city / "districts.geojson")
    install_starting_catalogue()
    with Timer() as timer:
        start_snapshot_run(as_of=date(2026, 10, 31), window_days=args.days)
    print(f"snapshot of {args.subscribers:,} subscribers in {timer.seconds:.0f}s", flush=True)

    users = {}
    for name, role in (("analyst", StaffProfile.Role.ADMIN), ("sales", StaffProfile.Role.SALES)):
        users[name] = get_user_model().objects.create_user(name, password="unused")
        assign_role(user=users[name], role=role, region_codes=["4406"] if role == StaffProfile.Role.ADMIN else ["440604"])
    districts = list(MicroArea.objects.filter(kind="district").order_by("region__code"))
    chancheng = next(a for a in districts if a.region.code == "440604")
    # Nearly the largest polygon MICROAREA_MAX_HEXES allows (~19,500 km², ~185,000 hexes), centred on the city.
    lon, lat, half = 113.12, 23.02, 0.665
    largest = {"type": "Polygon", "coordinates": [[[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half],
                                                    [lon - half, lat + half], [lon - half, lat - half]]]}
    kept = create_micro_area(name="largest-kept", kind="custom", region=chancheng.region, geometry=largest)
    print(f"the largest area: {kept.hex_count:,} res-9 hexes", flush=True)
    places = " or ".join(f'area("{a.region.name}/{a.name}")' for a in districts)
    requests = [
        ("reference: GET regions", "sales", "get", "/api/v1/regions/", None),
        ("refused: a resolution-0 hex as an area", "sales", "post", "/api/v1/microareas/",
         {"name": "x", "region": "440604", "hexes": ["8041fffffffffff"]}),
        ("refused: a continent as an area", "sales", "post", "/api/v1/microareas/",
         {"name": "x", "region": "440604", "geometry": CONTINENT}),
        ("refused: a 3 MB body", "sales", "post", "/api/v1/microareas/",
         {"name": "x", "region": "440604", "hexes": ["89411c2bfffffff"] * 150_000}),
        ("refused: 11 places in an audience", "sales", "post", "/api/v1/audiences/preview",
         {"expression": " or ".join([f'area("{chancheng.name}")'] * 11)}),
        ("allowed: the largest area, drawn", "analyst", "post", "/api/v1/microareas/",
         {"name": "largest", "region": "440604", "geometry": largest}),
        ("allowed: the city's districts in one audience", "analyst", "post", "/api/v1/audiences/preview", {"expression": places}),
        ("allowed: the portrait of that audience", "analyst", "post", "/api/v1/audiences/profile", {"expression": places}),
        ("allowed: the city's res-9 hex map", "analyst", "get", "/api/v1/hexes/?resolution=9", None),
        ("allowed: a district's panel", "sales", "get", f"/api/v1/microareas/{chancheng.id}/stats/?product=5g_plan", None),
        ("allowed: the largest area's panel", "analyst", "get", f"/api/v1/microareas/{kept.id}/stats/?product=5g_plan", None),
        ("allowed: the largest area in an audience", "analyst", "post", "/api/v1/audiences/preview",
         {"expression": 'area("largest-kept") and high_value'}),
    ]
    reference = None
    print(f"{'request':<50} {'status':>6} {'seconds':>8} {'x ref':>7} {'grew MB':>8}")
    for label, who, method, url, body in requests:
        runs = []
        for _ in range(3):
            runs.append(measured(who, method, url, body))
            MicroArea.objects.filter(name="largest").delete()  # drawn again the next time
        status = runs[0][0]
        seconds = statistics.median(r[1] for r in runs)
        grew = max(r[2] for r in runs)
        reference = reference or seconds
        print(f"{label:<50} {status!s:>6} {seconds:>8.3f} {seconds / reference:>7.1f} {grew:>8.1f}", flush=True)
    print("goal: every refusal < 1 s; every request < 5 s and < 300 MB of growth")


if __name__ == "__main__":
    main()
