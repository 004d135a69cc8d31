"""Settings: read once, in one place, in small frozen groups."""

import dataclasses
import re
from pathlib import Path

import pytest

from scoreboard.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent
SERVICE_PACKAGES = ("web", "scoreboard", "workers", "scheduler", "migrations")
# gunicorn's config files read their own variables (ports, worker counts, timeouts), and
# prometheus_client's multiprocess directory is the web's run-time state, not a setting.
ALLOWED_FILES = {"scoreboard/settings.py", "web/gunicorn_conf.py", "web/stream_gunicorn_conf.py"}
ENV_READ = re.compile(r"os\.environ|os\.getenv|getenv\(")

BASE = {"DATABASE_URL": "postgresql://u@h/db", "REDIS_URL": "redis://h:6379/0", "SECRET_KEY": "k" * 40}


def test_the_environment_is_read_in_settings_alone():
    offenders = []
    for package in SERVICE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in ALLOWED_FILES:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if ENV_READ.search(line) and "PROMETHEUS_MULTIPROC_DIR" not in line:
                    offenders.append(f"{name}:{number}: {line.strip()}")
    assert offenders == []


def test_every_group_is_frozen():
    settings = Settings.from_env(BASE)
    groups = [getattr(settings, f.name) for f in dataclasses.fields(settings) if dataclasses.is_dataclass(
        getattr(settings, f.name))]
    assert len(groups) >= 8
    for group in groups:
        field = dataclasses.fields(group)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(group, field, None)


def test_variables_land_in_their_groups():
    settings = Settings.from_env({**BASE, "BATCH_MAX": "7", "STREAM_HEARTBEAT": "2", "RATE_LIMIT_SUBMIT": "3 per second",
                                  "ANOMALY_ZSCORE": "4.5", "METRICS_PORT": "9100", "STARTUP_WAIT": "2.5",
                                  "DATABASE_REPLICA_URLS": "postgres://r1/db, postgresql://r2/db"})
    assert settings.batching.max_size == 7 and settings.stream.heartbeat == 2.0
    assert settings.limits.submit == "3 per second" and settings.anomaly.zscore == 4.5
    assert settings.metrics.port == 9100 and settings.startup_wait == 2.5
    assert settings.replicas.urls == ("postgresql://r1/db", "postgresql://r2/db")
    # the near-limit rule follows the submit limit: 80% of 3/s over the 60 s window
    assert settings.anomaly.rate_count == 144


@pytest.mark.parametrize("name, value", [("BATCH_MAX", "0"), ("STREAM_RETRY_MS", "x"), ("RATELIMIT_ENABLED", "maybe"),
                                         ("SCOREBOARD_ENV", "staging"), ("REDIS_SENTINELS", "sentinel-without-port"),
                                         ("REDIS_MIN_REPLICA_ACKS", "-1"), ("REDIS_URL", "http://h:6379"),
                                         ("REQUEST_BODY_TIMEOUT", "0"), ("REQUEST_BODY_TIMEOUT", "nan"),
                                         ("REQUEST_BODY_TIMEOUT", "-1")])
def test_a_bad_value_is_a_clear_error(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**BASE, name: value})


def test_sentinels_win_over_redis_url_and_need_a_master_name():
    settings = Settings.from_env({**BASE, "REDIS_SENTINELS": "s1:26379, [::1]:26380", "REDIS_SENTINEL_MASTER": "main",
                                  "REDIS_MIN_REPLICA_ACKS": "1", "REDIS_URL": "redis://:pw@ignored:1/3"})
    assert settings.redis.sentinels == (("s1", 26379), ("::1", 26380)) and settings.redis.sentinel_master == "main"
    assert settings.redis.min_replica_acks == 1 and "main" in settings.redis.where and "ignored" not in settings.redis.where
    no_url = {k: v for k, v in BASE.items() if k != "REDIS_URL"}
    assert Settings.from_env({**no_url, "REDIS_SENTINELS": "s1:26379", "REDIS_SENTINEL_MASTER": "m"}).redis.sentinels
    with pytest.raises(SettingsError, match="REDIS_SENTINEL_MASTER"):
        Settings.from_env({**BASE, "REDIS_SENTINELS": "s1:26379"})
    with pytest.raises(SettingsError, match="REDIS_URL"):
        Settings.from_env(no_url)


def test_a_libpq_multi_host_url_reaches_sqlalchemy_with_every_host():
    url = "postgres://app:secret@db1:5432,db2:5433/scores?target_session_attrs=read-write"
    settings = Settings.from_env({**BASE, "DATABASE_URL": url})
    assert settings.database_url == ("postgresql://app:secret@/scores?host=db1:5432&host=db2:5433"
                                     "&target_session_attrs=read-write")
    from sqlalchemy.engine import make_url

    args = make_url(settings.database_url).get_dialect()().create_connect_args(make_url(settings.database_url))[1]
    assert args["host"] == "db1,db2" and args["port"] == "5432,5433" and args["target_session_attrs"] == "read-write"


def test_worker_metrics_stay_on_loopback_unless_a_token_guards_them():
    assert Settings.from_env({**BASE, "METRICS_PORT": "9100"}).metrics.host == "127.0.0.1"
    with pytest.raises(SettingsError, match="METRICS_TOKEN"):
        Settings.from_env({**BASE, "METRICS_PORT": "9100", "METRICS_HOST": "0.0.0.0"})
    with pytest.raises(SettingsError, match="METRICS_TOKEN"):
        Settings.from_env({**BASE, "METRICS_PORT": "9100", "METRICS_HOST": "metrics.internal"})
    guarded = Settings.from_env({**BASE, "METRICS_PORT": "9100", "METRICS_HOST": "0.0.0.0", "METRICS_TOKEN": "t"})
    assert (guarded.metrics.host, guarded.metrics.token) == ("0.0.0.0", "t")
    for host in ("::1", "127.0.0.2", "localhost"):
        assert Settings.from_env({**BASE, "METRICS_PORT": "9100", "METRICS_HOST": host}).metrics.host == host
    # outside production (make run, tests) any address goes, as before
    assert Settings.from_env({**BASE, "SCOREBOARD_ENV": "development", "METRICS_PORT": "9100",
                              "METRICS_HOST": "0.0.0.0"}).metrics.host == "0.0.0.0"
