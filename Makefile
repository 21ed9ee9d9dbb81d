# acctsync developer commands. `make run` and `make test` install what is missing first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed

.PHONY: install run test unit lint bench clean browser

install: $(STAMP_PY) $(STAMP_NODE)

$(STAMP_PY): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "acctsync needs Python 3.11 (set PYTHON=/path/to/python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: install
	$(BIN)/python -m acctsync.devstack $(if $(VERBOSE),--verbose)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The suite runs in two halves at once, each with its own Azurite and simulator: most tests
# wait on servers, so two cores finish it in little more than half the time. The half with
# the fault tests keeps the simulator's port 443 (msal's password sign-in asks it); the other
# leaves it. The `make run` tests time a whole local stack's start and Ctrl-C, so they run
# last, alone. TESTS=path runs only that, in one process.
SUITE_A := tests/faults tests/sim/test_sim_auth.py tests/engine/test_validate.py
ALONE := tests/faults/test_local_stack.py
test: lint browser
ifdef TESTS
	$(BIN)/pytest $(TESTS)
else
	@echo "pytest: $(SUITE_A) in the background (its report follows), the rest here, then $(ALONE)"
	@$(BIN)/pytest -p no:cacheprovider $(SUITE_A) --ignore=$(ALONE) > .pytest-half.log 2>&1 & half=$$!; \
	ACCTSYNC_SIM_REALM=off $(BIN)/pytest $(addprefix --ignore=,$(SUITE_A)); rest=$$?; \
	wait $$half; half=$$?; echo "---- pytest $(SUITE_A) ----"; cat .pytest-half.log; \
	$(BIN)/pytest -p no:cacheprovider $(ALONE); alone=$$?; \
	[ $$half -eq 0 ] && [ $$rest -eq 0 ] && [ $$alone -eq 0 ]
endif

# The fast front door: the pure decisions in tests/unit, with no Azurite, simulator or browser
# (tests/unit/conftest.py fails a test there that asks for one). `make test` runs them too.
unit: $(STAMP_PY)
	$(BIN)/pytest -p no:cacheprovider tests/unit

# tests/console drive Debian's Chromium through its chromedriver: installed with apt when
# missing (as root), never downloaded by a test tool.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v certutil >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver libnss3-tools; \
	else \
		echo "make test: chromium, chromedriver or certutil is missing and this is not root: tests/console will be skipped in part (install Debian's chromium, chromium-driver and libnss3-tools to run them)"; \
	fi

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules .acctsync .mypy_cache .ruff_cache .pytest_cache .pytest-half.log
