#!/usr/bin/env bash
# `make bench`: release build, authd on Postgres + Redis pinned to core 0, the load generator
# pinned to core 1, every scenario, one table. Extra arguments go to the load generator
# (`make bench ARGS="--duration 5 --scenarios me,refresh"`). See BENCHMARKS.md.
# BENCH_AUTHD_BIN=path runs that authd binary instead of building one (the load generator is
# still built), to measure another build, such as an older commit's, with the same script.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_admin_url="${BENCH_DATABASE_URL:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}"
redis_url="${BENCH_REDIS_URL:-${TEST_REDIS_URL:-redis://127.0.0.1:6379}}"
port="${BENCH_PORT:-18080}"
# The load generator takes the servers' emails here (`recovery` reads the reset links).
smtp_port="${BENCH_SMTP_PORT:-$((port + 2))}"
server_core="${BENCH_SERVER_CORE:-0}"
client_core="${BENCH_CLIENT_CORE:-1}"

if [[ -n "${BENCH_AUTHD_BIN:-}" ]]; then
  authd_bin="$BENCH_AUTHD_BIN"
  cargo build --release -p loadgen
else
  authd_bin=target/release/authd
  cargo build --release -p authd -p loadgen
fi

# Whether the load generator will run `two-instances`, which needs a second server: when it
# is named in --scenarios, or when no --scenarios is given (every scenario runs).
wants_two_instances() {
  local named="" given=""
  while (($# > 0)); do
    case "$1" in
      --scenarios) given=1; named+=",${2:-}"; shift ;;
      --scenarios=*) given=1; named+=",${1#--scenarios=}" ;;
    esac
    shift
  done
  [[ -z "$given" || "$named," == *",two-instances,"* ]]
}

work="$(mktemp -d)"
database="authd_bench_$$"
server_pid=""
second_pid=""
cleanup() {
  for pid in "$server_pid" "$second_pid"; do
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" && wait "$pid" || true
    fi
  done
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
"$authd_bin" keys generate --algorithm "$algorithm" --out "$work/signing.jwk" >/dev/null

# Production defaults, but for plain-http cookies, a private Redis prefix and JSON logs
# written to a file, as a deployment would ship them; emails go to the load generator, the
# outbox is polled every 100 ms rather than every second (a reset would otherwise wait for the
# poll more than for anything else), and the per-network cap, which counts reset requests too,
# is out of reach (every client is 127.0.0.1). Listens on port $1, logs to $2.
start_authd() {
  env DATABASE_URL="$database_url" REDIS_URL="$redis_url" AUTHD_REDIS_PREFIX="bench-$$" \
      AUTHD_SMTP_URL="smtp://127.0.0.1:$smtp_port" AUTHD_OUTBOX_POLL_MS=100 \
      AUTHD_LOGIN_IP_MAX_FAILURES=4000000000 \
      AUTHD_LISTEN="127.0.0.1:$1" AUTHD_JWT_ALGORITHM="$algorithm" AUTHD_JWT_KEY_FILES="$work/signing.jwk" \
      AUTHD_COOKIE_SECURE=false AUTHD_LOG_FORMAT="${BENCH_LOG_FORMAT:-json}" RUST_LOG="${BENCH_RUST_LOG:-info}" \
      taskset -c "$server_core" "$authd_bin" serve >"$2" 2>&1 &
}

# Waits until the server on port $1 (pid $2, log $3) answers /health; fails if it exits.
wait_healthy() {
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$1/health" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then cat "$3" >&2; exit 1; fi
    sleep 0.1
  done
}

start_authd "$port" "$work/authd.log"
server_pid=$!
wait_healthy "$port" "$server_pid" "$work/authd.log"
logs=("$work/authd.log")

# `two-instances`: a second authd on the next port, with the same database, Redis prefix, key
# and settings, as a second replica would run. It shares the first one's core, so the two
# together have what one had. Started once the first is up, so they do not both migrate.
second_args=()
if wants_two_instances "$@"; then
  start_authd "$((port + 1))" "$work/authd-2.log"
  second_pid=$!
  wait_healthy "$((port + 1))" "$second_pid" "$work/authd-2.log"
  logs+=("$work/authd-2.log")
  second_args=(--second-address "127.0.0.1:$((port + 1))" --second-server-pid "$second_pid")
fi
sleep 1 # let start-up allocations settle before reading the idle RSS

mkdir -p bench/results
set +e
taskset -c "$client_core" target/release/loadgen --address "127.0.0.1:$port" \
    --server-pid "$server_pid" "${second_args[@]}" --smtp-listen "127.0.0.1:$smtp_port" --markdown bench/results/latest.md "$@"
status=$?
set -e
if [[ -n "$commit_rate" ]]; then
  line="Postgres baseline: $commit_rate one-row UPDATE commits/s (pgbench, 16 connections, synchronous_commit=$(psql -At "$database_url" -c 'SHOW synchronous_commit'))"
  echo "$line"
  echo "$line" >>bench/results/latest.md
fi
for log in "${logs[@]}"; do
  echo "$(basename "$log"): authd wrote $(wc -l <"$log") log lines, $(grep -cE '"level":"(WARN|ERROR)"' "$log" || true) of them warnings or errors"
  grep -E '"level":"(WARN|ERROR)"' "$log" | head -5 || true
done
exit "$status"
