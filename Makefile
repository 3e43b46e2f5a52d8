# One-word commands. Each installs what it needs first, so a fresh clone works.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help uv install browser run test check fmt bench status doctor demo

help:
	@echo "make run    install everything and start Bastion on http://$(HOST):$(PORT)"
	@echo "make test   install everything (Debian's chromium too) and run the whole test suite"
	@echo "make check  ruff (lint + format) and mypy"
	@echo "make bench  install the peers and run the benchmarks under bench/"
	@echo "make status what this installation runs on (database, policy, keys, models)"
	@echo "make doctor check the environment and configuration and say what to fix"
	@echo "make demo   create the schema and the demo data without starting the server"

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check uv

install: uv
	@$(UV) sync --locked --quiet

# The dashboard's browser tests drive Debian's Chromium (never a downloaded browser).
CHROMIUM := /usr/bin/chromium
APT_INSTALL := apt-get update && apt-get install -y --no-install-recommends chromium
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
		echo "installing Debian's chromium (for the dashboard's browser tests)"; \
		if [ "$$(id -u)" = 0 ]; then sh -c '$(APT_INSTALL)'; \
		elif command -v sudo >/dev/null 2>&1; then sudo sh -c '$(APT_INSTALL)'; \
		else echo "error: $(CHROMIUM) is missing and this user can neither apt-get nor sudo:" \
			"install Debian's chromium package as root" >&2; exit 1; fi; \
		[ -x $(CHROMIUM) ] || { echo "error: $(CHROMIUM) still missing after apt-get" >&2; exit 1; }; \
	fi

run: install
	$(UV) run bastion db upgrade
	$(UV) run bastion demo seed
	$(UV) run bastion serve --host $(HOST) --port $(PORT)

status: install
	$(UV) run bastion status

doctor: install
	$(UV) run bastion doctor

demo: install
	$(UV) run bastion db upgrade
	$(UV) run bastion demo seed

test: install browser
	$(UV) run pytest $(PYTEST_ARGS)

check: install
	$(UV) run ruff check src tests bench hatch_build.py
	$(UV) run ruff format --check src tests bench hatch_build.py
	$(UV) run mypy

fmt: install
	$(UV) run ruff format src tests bench hatch_build.py
	$(UV) run ruff check --fix src tests bench hatch_build.py

bench: uv
	$(UV) sync --locked --quiet --group bench
	@for b in bench/[!_]*.py; do echo "== $$b"; OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(UV) run --group bench python $$b || exit 1; done
