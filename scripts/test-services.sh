#!/usr/bin/env bash
# Makes sure what the test suite talks to is there: the machine's PostgreSQL and Redis
# (started if they do not answer) and Debian's Chromium for Playwright.
set -euo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  echo "PostgreSQL does not answer on 127.0.0.1:5432; starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 30); do pg_up && break; sleep 1; done
fi
if ! redis_up; then
  echo "Redis does not answer on 127.0.0.1:6379; starting it"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 30); do redis_up && break; sleep 1; done
fi
pg_up || { echo "PostgreSQL is not reachable" >&2; exit 1; }
redis_up || { echo "Redis is not reachable" >&2; exit 1; }

bash "$(dirname "$0")/install-chromium.sh"
