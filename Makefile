# The two commands: `make up` and `make test`. Both install what they need first.
SHELL := /bin/bash
VENV := .venv
# The installed hastack (scripts/install-deps): what root runs, and what keeps working when
# this checkout is moved or deleted. Tests run the checkout's own code from $(VENV).
HASTACK := /opt/hastack/venv/bin/hastack
SPEC ?= hastack.yaml
# Integration tests start real processes; the slow drills and benchmarks run with `make test-slow`.
PYTEST_ARGS ?= -m "not slow" --durations=20

.PHONY: up down status deps test test-slow check unit bench-pg clean

up: deps
	@test -f $(SPEC) || $(HASTACK) -c $(SPEC) init
	$(HASTACK) -c $(SPEC) up

down: deps
	$(HASTACK) -c $(SPEC) down

status: deps
	$(HASTACK) -c $(SPEC) status

deps:
	@scripts/install-deps

test:
	@scripts/install-deps --test
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-slow:
	@scripts/install-deps --test
	$(VENV)/bin/pytest -m slow

unit: deps
	$(VENV)/bin/pytest tests/unit

check: deps
	scripts/check

bench-pg: deps
	$(HASTACK) -c $(SPEC) bench pg

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
