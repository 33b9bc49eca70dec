# The project's commands. `make test` is what CI runs (with `make lint`).
CARGO ?= cargo
# `make bench BENCH=<name>` runs one benchmark; BENCH_MODE=smoke runs a short version.
BENCH ?= all
BENCH_MODE ?= full
export BENCH_MODE
# Benchmarks build release binaries; BENCH_PROFILE=dev reuses the test build
# (CI's smoke run: it proves the benchmarks run, its figures mean nothing).
BENCH_PROFILE ?= release
BENCH_DIR = $(if $(filter dev,$(BENCH_PROFILE)),debug,$(BENCH_PROFILE))

.PHONY: help setup build test lint fmt bench up demo clean k8s

help:
	@echo "make setup   install what is missing (nats-server into .tools/)"
	@echo "make build   build every binary"
	@echo "make test    setup, then unit and integration tests (real nats-server)"
	@echo "make lint    cargo fmt --check and clippy -D warnings"
	@echo "make bench   benchmarks, printing BENCH lines (BENCH=<name> for one, BENCH_MODE=smoke for a short run)"
	@echo "             a table on stderr and target/bench-results.json"
	@echo "make up      the whole stack as local processes (Ctrl-C stops it)"
	@echo "make demo    sample orders against the running stack"

setup:
	@bash scripts/setup.sh

build:
	$(CARGO) build --workspace --bins

# Binaries first: cross-service tests run them as child processes.
test: setup
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Benchmarks run the binaries as separate processes; figures go to stdout
# (BENCH lines), a table to stderr and target/bench-results.json.
bench: setup
	$(CARGO) build --profile $(BENCH_PROFILE) --workspace --bins
	./target/$(BENCH_DIR)/gsl-bench $(BENCH)

# The whole stack locally: nats-server, carrier-sim, gateway, four adapters.
up:
	@bash scripts/stack.sh

demo:
	@bash scripts/demo.sh

clean:
	$(CARGO) clean
	rm -rf .run
