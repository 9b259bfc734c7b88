#!/usr/bin/env bash
# `make mutants`: cargo-mutants on the four crates whose tests must fail when their code is wrong
# (issue 16): the domain crate other teams embed, the use cases, the token and password crypto,
# and the in-memory adapters `make run` starts. Each crate's mutants are tested by that crate's
# own tests; for the in-memory adapters these include the port contract suite
# (crates/infra-memory/tests/contract.rs), which holds them to the same behaviour as Postgres and
# Redis. Exits non-zero on any missed mutant or timeout. Exclusions, each with its reason, are in
# .cargo/mutants.toml.
#
#   tests/mutants/run.sh                 every crate
#   tests/mutants/run.sh authd-domain    one crate
set -euo pipefail
cd "$(dirname "$0")/../.."

# The version whose behaviour this script and .cargo/mutants.toml were written against.
version=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -qF "$version"; then
  echo "cargo-mutants $version is missing; installing it"
  cargo install cargo-mutants --locked --version "$version"
fi

declare -A args=(
  # The serde feature's tests cover the value objects' conversions.
  [authd-domain]="--features serde"
  [authd-application]=""
  [authd-crypto]=""
  [authd-memory]=""
)
packages=("$@")
if [ "${#packages[@]}" -eq 0 ]; then
  packages=(authd-domain authd-application authd-crypto authd-memory)
fi

# Several tests (the contract suite's TTL and back-off checks) sleep through seconds of expiry:
# more test threads than cores let those sleeps overlap instead of queueing behind each other.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-16}"

status=0
for package in "${packages[@]}"; do
  if [ -z "${args[$package]+set}" ]; then
    echo "unknown package $package (one of: ${!args[*]})" >&2
    exit 2
  fi
  echo "== cargo mutants -p $package ${args[$package]}"
  mkdir -p "target/mutants/$package"
  # shellcheck disable=SC2086 # the extra arguments are words
  cargo mutants -p "$package" --output "target/mutants/$package" ${args[$package]} || status=$?
done
exit "$status"
