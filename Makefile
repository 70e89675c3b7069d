# vocalcast — the two commands of the README are `make up` and `make test`.
SHELL := /bin/bash
VENV  := .venv/bin

.PHONY: up down status test soak lint bench bootstrap

bootstrap:
	@./scripts/bootstrap.sh

## Bring up the whole service on its embedded defaults (demo mode), in the background.
up: bootstrap
	@VOCALCAST_DEMO=$${VOCALCAST_DEMO:-1} $(VENV)/vocalcast stack up

## Stop what `make up` started.
down: bootstrap
	@$(VENV)/vocalcast stack down

status: bootstrap
	@$(VENV)/vocalcast stack status

## Every test: lint, type checks, unit, store and integration tests on the real stack.
test: bootstrap lint
	@$(VENV)/python -m pytest

## Randomised crash runs (kill -9 at points drawn from a seed): not in `make test` (see issue 16's notes).
soak: bootstrap
	@$(VENV)/python -m pytest -m soak

lint: bootstrap
	@$(VENV)/ruff check engine ivr lab tests bench
	@$(VENV)/ruff format --check engine ivr lab tests bench
	@$(VENV)/mypy

bench: bootstrap
	@$(VENV)/python -m bench
