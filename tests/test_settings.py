"""Settings come from the environment only; a bad value stops start-up with a message naming it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "k" * 30 + "0123456789abcdefghijklmnopqrstuvwxyz",
    "PSEUDONYM_KEY": "p" * 40,
    "ALLOWED_HOSTS": "marketing.example.internal",
}


def start(tmp_path, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {
        "DEBUG", "SECRET_KEY", "PSEUDONYM_KEY", "DATABASE_URL", "REDIS_URL", "MAP_TILE_URL", "ALLOWED_HOSTS"}}
    clean.update({"DATA_DIR": str(tmp_path / "data"), "DEBUG": "1", **env})
    clean = {k: v for k, v in clean.items() if v is not None}  # None: leave the variable out
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=clean, capture_output=True, text=True)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://127.0.0.1:6379/0"}, "REDIS_URL"),
        ({"MAP_TILE_URL": "https://tiles.example/tile.png"}, "MAP_TILE_URL"),
        ({"PSEUDONYM_KEY": "short"}, "PSEUDONYM_KEY"),
        ({"SNAPSHOT_PARTITION_SIZE": "lots"}, "SNAPSHOT_PARTITION_SIZE"),
        ({"SNAPSHOT_WINDOW_DAYS": "400"}, "SNAPSHOT_WINDOW_DAYS"),
        ({"CHURN_WINDOW_DAYS": "400"}, "CHURN_WINDOW_DAYS"),
        ({"CHURN_WINDOW_DAYS": "3"}, "CHURN_WINDOW_DAYS"),
        ({"CHURN_MIN_CHURNERS": "0"}, "CHURN_MIN_CHURNERS"),
        ({"VALUE_TIER_SHARES": "0.2"}, "VALUE_TIER_SHARES"),
        ({"CAMPAIGN_COST_PER_CONTACT": "sms=-1"}, "CAMPAIGN_COST_PER_CONTACT"),
        ({"CAMPAIGN_COST_PER_CONTACT": "fax=1"}, "CAMPAIGN_COST_PER_CONTACT"),
        ({"CAMPAIGN_COST_PER_CONTACT": "sms=cheap"}, "CAMPAIGN_COST_PER_CONTACT"),
        ({"VALUE_TIER_SHARES": "0.6,0.5"}, "VALUE_TIER_SHARES"),
        ({"VALUE_TIER_SHARES": "high,mid"}, "VALUE_TIER_SHARES"),
        ({**PRODUCTION, "SECRET_KEY": ""}, "SECRET_KEY"),
        ({**PRODUCTION, "SECRET_KEY": "short-secret"}, "SECRET_KEY"),
        ({**PRODUCTION, "PSEUDONYM_KEY": ""}, "PSEUDONYM_KEY"),
        ({**PRODUCTION, "ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS"),
    ],
)
def test_a_bad_value_fails_at_start_naming_it(tmp_path, env, named):
    result = start(tmp_path, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and named in result.stderr.splitlines()[-1]


def test_production_is_the_default_and_development_needs_only_debug(tmp_path):
    nothing = start(tmp_path, DEBUG=None)  # no environment at all: production, which needs its secrets
    assert nothing.returncode != 0 and "SECRET_KEY must be set when DEBUG is off" in nothing.stderr
    result = start(tmp_path)  # DEBUG=1 alone: the embedded default
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data").is_dir()


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(PRODUCTION, DATA_DIR=str(tmp_path / "data"), REDIS_URL="redis://127.0.0.1:6379/0",
               MAP_TILE_URL="https://tiles.example.internal/{z}/{x}/{y}.png")
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
