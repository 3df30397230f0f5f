# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run test install bench fuzz clean

$(BIN)/jobrunner-admin: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/jobrunner-admin

# Runs the server on SQLite with demo data, the embedded scheduler and a local worker.
run: install
	$(BIN)/python -m jobrunner.demo development.ini

# The whole test suite: SQLite by default; set JOBRUNNER_TEST_DATABASE_URL for PostgreSQL.
test: install
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

# The API fuzz suite with a long profile (the test suite runs 10,000 requests).
fuzz: install
	JOBRUNNER_FUZZ_REQUESTS=$${JOBRUNNER_FUZZ_REQUESTS:-200000} $(BIN)/python -m pytest -q tests/fuzz

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var build dist *.egg-info
