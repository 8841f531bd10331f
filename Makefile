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

demo: install
	$(PY) benches/corpus.py --cache $(CACHE)
	$(VENV)/bin/distill-prep --vocab $(CACHE)/bert-base-chinese/vocab.txt \
		--out $(CACHE)/demo/examples $(CACHE)/corpus/peoples_daily.txt
	$(PY) -c "import wwm_distill as w; ex = w.Examples('$(CACHE)/demo/examples'); \
		e = ex[0]; print(len(ex), 'examples; first:', e['input_ids'][:24], e['masked_positions'])"

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

clean:
	rm -rf target dist $(VENV) python/wwm_distill/*.so
