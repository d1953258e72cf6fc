# Tollgate — every target does its own set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench lint clean crds docs

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: start the gateway on 127.0.0.1:8080 from examples/tollgate.yaml (mock provider built in)
run: $(STAMP)
	$(VENV)/bin/tollgate gateway --config examples/tollgate.yaml --host 127.0.0.1 --port 8080

## test: install everything the suite needs (venv, packages, redis-server) and run it all
test: $(STAMP)
	bash scripts/ensure-tools.sh
	bash scripts/fetch-k8s-tools.sh
	$(PY) -m pytest $(PYTEST_ARGS)

## bench: the latency/throughput benchmark against a fast fake upstream (not a test)
bench: $(STAMP)
	bash scripts/ensure-tools.sh
	$(PY) -m bench.run $(BENCH_ARGS)

## crds: regenerate crds/ and charts/tollgate/crds/ from operator/models.py
crds: $(STAMP)
	$(PY) -m tollgate.operator.crdgen
	bash scripts/fetch-k8s-tools.sh
	$(PY) deploy/kustomize/generate.py

## docs: regenerate the values reference in docs/install.md from the chart's schema
docs: $(STAMP)
	$(PY) scripts/values-doc.py --write

lint: $(STAMP)
	$(VENV)/bin/ruff check gateway operator tests bench scripts deploy/kustomize

clean:
	rm -rf $(VENV) .tools .pytest_cache
