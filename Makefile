# The two entry points a newcomer needs: `make demo` and `make test`.
# Both create the virtual environment on first use (see docs/development.md).
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: demo test lint clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	bash scripts/install-chromium.sh
	$(VENV)/bin/artwatch demo run

test: $(STAMP)
	bash scripts/test-services.sh
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

clean-venv:
	rm -rf $(VENV)
