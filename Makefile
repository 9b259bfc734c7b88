# authd — `make help` lists the targets.
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help run test lint fmt build bench api-fuzz mutants

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

run: ## Development server on 127.0.0.1:8000: in-memory store and cache, cookies without Secure, readable logs
	env -u DATABASE_URL -u REDIS_URL AUTHD_COOKIE_SECURE=false AUTHD_LOG_FORMAT=text \
		$(CARGO) run -p authd -- serve

test: ## Every test: unit, adapter (real Postgres and Redis) and end-to-end
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc
	@# The domain crate's optional serde feature (off in the workspace build).
	$(CARGO) test -p authd-domain --features serde --lib

api-fuzz: ## schemathesis (pinned, in a venv under target/) with --checks all against a running server: it must find nothing
	tests/schemathesis/run.sh

mutants: ## cargo-mutants on authd-domain, -application, -crypto and -memory, each by its own tests: fails on any missed mutant or timeout
	tests/mutants/run.sh $(CRATES)

lint: ## Formatting, clippy (warnings are errors), docs, and the domain crate's dependency rule
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps
	@# Other teams embed the domain crate: no framework, database, cache or JWT crate may reach it.
	@if $(CARGO) tree -p authd-domain -e normal --prefix none | grep -E '^(actix[a-z_-]*|diesel[a-z_-]*|fred|josekit|tokio|authd-application|serde) v'; then \
		echo "the domain crate depends on the crates above" >&2; exit 1; fi

fmt: ## Format the code
	$(CARGO) fmt --all

bench: ## Load benchmark: release authd on Postgres + Redis (core 0), every scenario, targets checked (BENCHMARKS.md)
	bench/run.sh $(ARGS)

build: ## Release build of the binary
	$(CARGO) build --release -p authd
