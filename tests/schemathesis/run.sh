#!/usr/bin/env bash
# Property-based run of schemathesis (--checks all) against /openapi.json of a running authd:
# every request the document allows must get an answer the document describes. The server runs
# on the in-memory backend with a primary admin, and schemathesis sends the admin's bearer
# token, so the admin routes are exercised past their 401. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="target/schemathesis-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r tests/schemathesis/requirements.txt
fi

cargo build -q -p authd
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
admin_email="admin@example.com"
admin_password="schemathesis admin passphrase"
log="$(mktemp)"
env -u DATABASE_URL -u REDIS_URL AUTHD_LISTEN="127.0.0.1:$port" AUTHD_COOKIE_SECURE=false \
  AUTHD_ADMIN_EMAIL="$admin_email" AUTHD_ADMIN_PASSWORD="$admin_password" \
  AUTHD_LOGIN_MAX_FAILURES=1000000 AUTHD_LOGIN_IP_MAX_FAILURES=1000000 \
  AUTHD_ARGON2_MEMORY_KIB=1024 AUTHD_ARGON2_ITERATIONS=1 RUST_LOG=warn \
  target/debug/authd serve >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "$base/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/health" >/dev/null || { echo "authd did not start:" >&2; cat "$log" >&2; exit 1; }

token="$(curl -fsS -o /dev/null -c - "$base/api/access/login" \
  --data-urlencode "username=$admin_email" --data-urlencode "password=$admin_password" \
  | awk '$6 == "access_token" { print $7 }')"
[ -n "$token" ] || { echo "could not log in as the admin" >&2; exit 1; }

# With the admin's token: every operation but those that can end that very session (logging
# out, and the admin routes that revoke a user's sessions, which random ids never reach but the
# admin's own id can), without the stateful phase, whose chains would reach the admin.
"$venv/bin/schemathesis" --config-file tests/schemathesis/schemathesis.toml run "$base/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $token" \
  --exclude-path /api/access/logout --exclude-path /api/access/logout-all \
  --exclude-path /api/users/{id} --exclude-path /api/users/{id}/sessions \
  --phases examples,coverage,fuzzing \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-40}" \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --no-color "$@"
# Then those, last: a password set on the admin ends the token, and what follows is a 401.
"$venv/bin/schemathesis" --config-file tests/schemathesis/schemathesis.toml run "$base/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $token" \
  --include-path /api/users/{id} --include-path /api/users/{id}/sessions \
  --phases examples,coverage,fuzzing \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-40}" \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --no-color "$@"
# Without a token, every operation and every phase, the stateful one included.
"$venv/bin/schemathesis" --config-file tests/schemathesis/schemathesis.toml run "$base/openapi.json" \
  --checks all \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-40}" \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --no-color "$@"
