#!/usr/bin/env bash
# `make bench`: release build, authd on Postgres + Redis pinned to core 0, the load generator
# pinned to core 1, every scenario, one table. Extra arguments go to the load generator
# (`make bench ARGS="--duration 5 --scenarios me,refresh"`). See BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_admin_url="${BENCH_DATABASE_URL:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}"
redis_url="${BENCH_REDIS_URL:-${TEST_REDIS_URL:-redis://127.0.0.1:6379}}"
port="${BENCH_PORT:-18080}"
server_core="${BENCH_SERVER_CORE:-0}"
client_core="${BENCH_CLIENT_CORE:-1}"

cargo build --release -p authd -p loadgen

work="$(mktemp -d)"
database="authd_bench_$$"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" && wait "$server_pid" || true
  fi
  psql -q "$pg_admin_url" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

psql -q "$pg_admin_url" -c "CREATE DATABASE $database" >/dev/null
database_url="${pg_admin_url%/*}/$database"
if [[ -n "${BENCH_SYNCHRONOUS_COMMIT:-}" ]]; then
  psql -q "$pg_admin_url" -c "ALTER DATABASE $database SET synchronous_commit = $BENCH_SYNCHRONOUS_COMMIT" >/dev/null
fi
# A third baseline: how many one-row UPDATE commits Postgres makes per second here, with 16
# connections (authd's default pool). A refresh commits once; this bounds it on slow disks.
commit_rate=""
if command -v pgbench >/dev/null; then
  printf 'UPDATE bench_commit SET n = n + 1 WHERE id = (random() * 999)::int;\n' >"$work/commit.sql"
  psql -q "$database_url" \
    -c "CREATE TABLE bench_commit (id int PRIMARY KEY, n int); INSERT INTO bench_commit SELECT g, 0 FROM generate_series(0, 999) g" >/dev/null
  commit_rate="$(pgbench -n -c 16 -j 1 -T 3 -f "$work/commit.sql" "$database_url" 2>/dev/null \
    | awk '/^tps/ { printf "%.0f", $3 }')"
  psql -q "$database_url" -c "DROP TABLE bench_commit" >/dev/null
fi

algorithm="${BENCH_JWT_ALGORITHM:-EdDSA}"
target/release/authd keys generate --algorithm "$algorithm" --out "$work/signing.jwk" >/dev/null

# Production defaults, but for plain-http cookies, a private Redis prefix and JSON logs
# written to a file, as a deployment would ship them.
env DATABASE_URL="$database_url" REDIS_URL="$redis_url" AUTHD_REDIS_PREFIX="bench-$$" \
    AUTHD_LISTEN="127.0.0.1:$port" AUTHD_JWT_ALGORITHM="$algorithm" AUTHD_JWT_KEY_FILES="$work/signing.jwk" \
    AUTHD_COOKIE_SECURE=false AUTHD_LOG_FORMAT="${BENCH_LOG_FORMAT:-json}" RUST_LOG="${BENCH_RUST_LOG:-info}" \
    taskset -c "$server_core" target/release/authd serve >"$work/authd.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then cat "$work/authd.log" >&2; exit 1; fi
  sleep 0.1
done
sleep 1 # let start-up allocations settle before reading the idle RSS

mkdir -p bench/results
set +e
taskset -c "$client_core" target/release/loadgen --address "127.0.0.1:$port" \
    --server-pid "$server_pid" --markdown bench/results/latest.md "$@"
status=$?
set -e
if [[ -n "$commit_rate" ]]; then
  line="Postgres baseline: $commit_rate one-row UPDATE commits/s (pgbench, 16 connections, synchronous_commit=$(psql -At "$database_url" -c 'SHOW synchronous_commit'))"
  echo "$line"
  echo "$line" >>bench/results/latest.md
fi
echo "authd wrote $(wc -l <"$work/authd.log") log lines, $(grep -cE '"level":"(WARN|ERROR)"' "$work/authd.log" || true) of them warnings or errors"
grep -E '"level":"(WARN|ERROR)"' "$work/authd.log" | head -5 || true
exit "$status"
