# leadflow — `make run` starts the app with a demo organisation; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_LEADS ?= 30000

.PHONY: run test install lint typecheck bench browser-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pybabel compile --use-fuzzy -d src/leadflow/web/translations -D messages >/dev/null 2>&1 || true
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium and a CJK font for the browser tests (never a downloaded browser).
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi wqy; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei) >/dev/null; \
	  else echo "note: chromium missing and not root; browser tests will be skipped"; fi; \
	fi

run: install
	$(BIN)/pybabel compile --use-fuzzy -d src/leadflow/web/translations -D messages >/dev/null 2>&1 || true
	$(BIN)/leadflow db upgrade
	@if [ ! -f .leadflow-demo-done ]; then \
	  $(BIN)/leadflow demo --leads $(DEMO_LEADS) && touch .leadflow-demo-done; fi
	@echo "leadflow at http://127.0.0.1:8000 — log in as admin@leadflow.local / leadflow-demo"
	@# The demo keeps its emails in the built-in outbox (/outbox) unless told otherwise
	@# (LEADFLOW_EMAIL_PROVIDER=smtp with LEADFLOW_SMTP_HOST / _PORT sends them).
	LEADFLOW_EMAIL_PROVIDER=$${LEADFLOW_EMAIL_PROVIDER:-outbox} $(BIN)/leadflow serve --host 127.0.0.1 --port 8000

test: install browser-deps
	$(BIN)/pybabel compile --use-fuzzy -d src/leadflow/web/translations -D messages >/dev/null 2>&1 || true
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

lint:
	$(BIN)/ruff check src tests benchmarks

typecheck:
	$(BIN)/mypy

# The figures of every issue (long: see benchmarks/README.md for each script's options).
bench: install
	$(BIN)/python benchmarks/import_bench.py --engines sqlite,postgres --runs 3
	$(BIN)/python benchmarks/webhook_bench.py --engine postgres
	$(BIN)/python benchmarks/rescore_bench.py --engines sqlite,postgres --runs 3
	$(BIN)/python benchmarks/model_bench.py
	$(BIN)/python benchmarks/routing_bench.py --engines sqlite,postgres --runs 3
	$(BIN)/python benchmarks/email_bench.py --engines postgres --runs 3

clean:
	rm -rf $(VENV) leadflow.db leadflow.db-* .leadflow-demo-done
