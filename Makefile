# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
# The editable install maps alembic/ into the package (setup.py's package_dir),
# so setuptools picks its import-hook strategy and warns about folders that
# could shadow the package; there are none here, so that notice is only noise.
PIP = PYTHONWARNINGS=ignore $(BIN)/pip --disable-pip-version-check

.PHONY: run test install bench fuzz faults clean

# One stamp per set of packages: `make test` after `make run` still adds the
# test extras, and neither reinstalls what is there unless setup.py changed.
$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	touch $@

$(VENV)/.installed-run: setup.py $(VENV)/.created
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: setup.py $(VENV)/.installed-run
	$(PIP) install --quiet -e '.[test]'
	touch $@

# Everything for development: what running needs and the test tools.
install: $(VENV)/.installed-test

# Runs the server on SQLite with demo data, the embedded scheduler and a local worker.
run: $(VENV)/.installed-run
	$(BIN)/python -m jobrunner.demo development.ini

# The whole test suite: SQLite by default; set JOBRUNNER_TEST_DATABASE_URL for PostgreSQL.
# Test times range from milliseconds to a minute: with worksteal a process that
# runs out of tests takes some of the other's, rather than waiting for it.
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 --dist worksteal -q $(PYTEST_ARGS)

# The API fuzz suite with a long profile (the test suite runs 5,000 requests).
fuzz: $(VENV)/.installed-test
	JOBRUNNER_FUZZ_REQUESTS=$${JOBRUNNER_FUZZ_REQUESTS:-200000} $(BIN)/python -m pytest -q tests/fuzz

# The fault suite's long profile: every fault three times, on PostgreSQL (a
# private cluster it starts itself) and on SQLite; prints the figures table
# and writes it to var/faults/figures.md.
FAULTS = var/faults
faults: $(VENV)/.installed-test
	mkdir -p $(FAULTS) && rm -f $(FAULTS)/figures.jsonl
	JOBRUNNER_FAULTS_PROFILE=long JOBRUNNER_FAULTS_FIGURES=$(FAULTS)/figures.jsonl \
		$(BIN)/python -m pytest -n 2 -q tests/faults $(PYTEST_ARGS); status=$$?; \
		$(BIN)/python -m tests.faults.table $(FAULTS)/figures.jsonl | tee $(FAULTS)/figures.md; \
		exit $$status

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var build dist *.egg-info
