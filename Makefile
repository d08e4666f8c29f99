# Developer entry points. Every target that needs the virtualenv runs
# `setup` first; setup is idempotent and takes well under a second once done.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV_BIN := $(CURDIR)/.venv/bin
export PATH := $(VENV_BIN):$(PATH)

.PHONY: help setup demo test lint ansible-lint sanity build clean

help:
	@echo "make setup   create .venv, install requirements-dev.txt, link the collection (.cache/collections)"
	@echo "make demo    run scripts/demo.sh"
	@echo "make test    pytest, then molecule scenarios if any (scripts/test.sh)"
	@echo "make lint    ansible-lint (production profile), then ansible-test sanity (scripts/sanity.sh)"
	@echo "make build   build the collection tarball into build/ and smoke-test it by FQCN"
	@echo "make clean   remove build/, tests/output/ and .cache/ (keeps .venv)"

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	@bash scripts/test.sh

lint: ansible-lint sanity

ansible-lint: setup
	$(VENV_BIN)/ansible-lint --profile production

sanity: setup
	@bash scripts/sanity.sh

build: setup
	@bash scripts/build.sh

clean:
	rm -rf build tests/output .cache .ansible .pytest_cache
