#!/usr/bin/env bash
# Installs the system programs the tests drive (where this machine allows it), and says
# plainly what is missing where it does not. Tests that need a missing program fail.
#   usage: tools/system_packages.sh
set -u
need=()   # "binary:debian-package"
need+=("nginx:nginx-light")
need+=("wrk:wrk")
need+=("redis-server:redis-server")
need+=("pg_basebackup:postgresql")
need+=("openssl:openssl")  # certificates of the TLS test (tests/test_tls.py)
need+=("chromium:chromium")  # the page test (tests/test_page.py)
need+=("promtool:prometheus")                 # checks and unit-tests deploy/prometheus/alerts.yml
need+=("amtool:prometheus-alertmanager")      # checks deploy/alertmanager/alertmanager.yml

missing=()
for item in "${need[@]}"; do
  bin=${item%%:*}; pkg=${item#*:}
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ] && ! ls /usr/lib/postgresql/*/bin/"$bin" >/dev/null 2>&1; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  if apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/scoreboard-apt.log 2>&1; then
    # Debian starts nginx on install; the tests run their own
    command -v service >/dev/null 2>&1 && service nginx stop >/dev/null 2>&1 || true
    exit 0
  fi
  echo "could not install ${missing[*]} (see /tmp/scoreboard-apt.log)"
else
  echo "missing system packages: ${missing[*]} (install them with your package manager, as root)"
fi
echo "the tests that need them will fail"
exit 0
