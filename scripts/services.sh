#!/usr/bin/env bash
# Makes sure the PostgreSQL and Redis the tests use answer (the inbox, unique
# jobs and the outbox keep their state there):
#   PostgreSQL  127.0.0.1:5432, database "test", user postgres, trust auth on
#               127.0.0.1 (internal/pgtest; DATABASE_URL names another)
#   Redis       127.0.0.1:6379 (internal/redistest; REDIS_URL names another)
# A service that answers is left alone; one that is installed and stopped
# is started; one that is missing is installed from the machine's apt
# sources (as root or with sudo), configured and started. A service whose
# *_URL variable is set is not touched: it is the caller's.
# Usage: scripts/services.sh [--check]   (--check: only report, change nothing)
set -euo pipefail

check_only=false
[ "${1:-}" = "--check" ] && check_only=true
say() { printf 'services.sh: %s\n' "$*" >&2; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@" >&2 ||
    { sudo_ apt-get -o DPkg::Lock::Timeout=600 update >&2 && sudo_ env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@" >&2; }
}

pg_ok() { command -v psql >/dev/null && psql -h 127.0.0.1 -p 5432 -U postgres -d test -Atqc 'select 1' >/dev/null 2>&1; }
redis_ok() { command -v redis-cli >/dev/null && [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then say "DATABASE_URL is set: PostgreSQL is yours"; return; fi
  if pg_ok; then say "PostgreSQL answers at 127.0.0.1:5432 (database test)"; return; fi
  if $check_only; then say "PostgreSQL: no database test at 127.0.0.1:5432"; return 1; fi
  if ! command -v pg_ctlcluster >/dev/null; then
    say "installing postgresql with apt-get"
    apt_install postgresql postgresql-client
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  if [ -z "$version" ]; then say "PostgreSQL is installed but has no cluster in /etc/postgresql"; return 1; fi
  local hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    say "trust auth for 127.0.0.1 in $hba (a test machine's database)"
    sudo_ sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  sudo_ pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null ||
    sudo_ pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  if ! psql -h 127.0.0.1 -U postgres -Atqc "select 1 from pg_database where datname = 'test'" | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -qc 'create database test'
  fi
  pg_ok || { say "PostgreSQL still does not answer at 127.0.0.1:5432"; return 1; }
  say "PostgreSQL answers at 127.0.0.1:5432 (database test)"
}

redis_() {
  if [ -n "${REDIS_URL:-}" ]; then say "REDIS_URL is set: Redis is yours"; return; fi
  if redis_ok; then say "Redis answers at 127.0.0.1:6379"; return; fi
  if $check_only; then say "Redis: nothing answers at 127.0.0.1:6379"; return 1; fi
  if ! command -v redis-server >/dev/null; then
    say "installing redis-server with apt-get"
    apt_install redis-server
  fi
  mkdir -p /tmp/warren-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /tmp/warren-redis --logfile /tmp/warren-redis/redis.log
  for _ in $(seq 1 30); do redis_ok && break; sleep 0.2; done
  redis_ok || { say "Redis still does not answer at 127.0.0.1:6379"; return 1; }
  say "Redis answers at 127.0.0.1:6379"
}

rc=0
postgres || rc=1
redis_ || rc=1
exit $rc
