# vocalcast — the two commands of the README are `make up` and `make test`.
SHELL := /bin/bash
VENV  := .venv/bin

.PHONY: cluster-up cluster-test up down status test soak fuzz smoke lint bench bootstrap

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

## The local cluster (issue 19): Kamailio in front of 2 Asterisk media servers and 2 engines, one PostgreSQL.
cluster-up: bootstrap
	@VOCALCAST_DEMO=$${VOCALCAST_DEMO:-1} $(VENV)/vocalcast stack up --nodes 2

## Every test: lint, type checks, unit, store and integration tests on the real stack.
test: bootstrap lint
	@$(VENV)/python -m pytest

## The randomised crash run (kill -9 at points drawn from a new seed each time), 10 times over; `make test`
## runs it once.
soak: bootstrap
	@for run in 1 2 3 4 5 6 7 8 9 10; do \
		$(VENV)/python -m pytest -q tests/integration/test_crash.py -k random_points || exit 1; \
	done

## The full fuzz run of issue 17 (seeded; VOCALCAST_FUZZ_SEED=N replays one): 10,000 http.php requests, 1,000 mail
## subjects, 200 malformed contacts CSV and 200 malformed audio files, with no time cap. `make test` runs
## the same tests with small counts within about 120 s in all (tests/security/fuzzing.py).
fuzz: bootstrap
	@VOCALCAST_FUZZ_HTTP=10000 VOCALCAST_FUZZ_MAIL=1000 VOCALCAST_FUZZ_CSV=200 VOCALCAST_FUZZ_AUDIO=200 \
		VOCALCAST_FUZZ_BUDGET_S=0 $(VENV)/python -m pytest -q -rA tests/security/test_fuzz_httpphp.py \
		tests/security/test_fuzz_mail.py tests/security/test_fuzz_uploads.py

## The production compose file for real (docker/compose.yml, one node, one call through Kamailio) under
## Debian's podman; builds its images from local tarballs the first time (minutes), not part of `make test`.
smoke: bootstrap
	@VOCALCAST_SMOKE=1 $(VENV)/python -m pytest -q tests/smoke

## Issue 19's big run through Kamailio (500 numbers over 2 nodes, one killed with its Asterisk stopped), not
## part of `make test`.
cluster-test: bootstrap
	@VOCALCAST_CLUSTER_TEST=1 $(VENV)/python -m pytest -q -s tests/integration/test_cluster_edge_big.py

lint: bootstrap
	@$(VENV)/ruff check engine ivr lab tests bench
	@$(VENV)/ruff format --check engine ivr lab tests bench
	@$(VENV)/mypy

bench: bootstrap
	@$(VENV)/python -m bench
