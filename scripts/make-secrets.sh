#!/usr/bin/env bash
# Writes the Compose secrets docker-compose.yml names into ./secrets, once: random
# passwords, and the URLs artwatch reads with them. Never commit ./secrets. The directory is
# private to its owner (700); the files are world-readable (644) because Compose bind-mounts
# them as they are and the containers read them as their own (non-root) users.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p secrets
chmod 700 secrets
umask 022
rand() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
write() {  # name value: only if missing, so a re-run keeps working secrets
  [ -s "secrets/$1" ] || printf '%s\n' "$2" > "secrets/$1"
}
write postgres_password "$(rand)"
write redis_password "$(rand)"
write minio_root_user artwatch
write minio_root_password "$(rand)"
write artwatch_web_secret "$(rand)$(rand)"
write artwatch_database_url \
  "postgresql://artwatch:$(cat secrets/postgres_password)@postgres:5432/artwatch"
write artwatch_redis_url "redis://:$(cat secrets/redis_password)@redis:6379/0"
write s3_credentials "$(printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s' \
  "$(cat secrets/minio_root_user)" "$(cat secrets/minio_root_password)")"
echo "secrets in $(pwd)/secrets"
