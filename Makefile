# One entry point for people and CI. `make run` and `make test` are the README's two commands.
CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: setup run test check bench bench-criterion clean

## Fetch every crate (the only set-up needed until the embedder and Python package land).
setup:
	$(CARGO) fetch --locked

## The main job on the embedded default store.
run: setup
	$(CARGO) run --release --locked -p memento --example quickstart

## Every test: unit, property, scenario, damage, fault and doc tests.
test: setup
	$(CARGO) test --workspace --locked

## Formatting and lints.
check: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## The benchmark harness (prints the table kept in BENCHMARKS.md).
bench: setup
	$(CARGO) run --release --locked -p memento-benches

bench-criterion: setup
	$(CARGO) bench --locked -p memento-benches

clean:
	$(CARGO) clean
