PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test run bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest

run: $(STAMP)
	./scripts/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
