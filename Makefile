SHELL := /bin/bash
# Stockflow — entry points. `make run` for a first look, `make test` for the
# whole suite against the real local stack (Kafka, Redis, Jaeger).
GO       ?= go
BIN      := bin/stockflow
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
STACK    := deploy/local/stack.sh
CLUSTER  := deploy/local/cluster.sh
FUZZTIME ?= 60s
# Downloads and builds shared by fresh clones (as deploy/local/lib.sh).
STOCKFLOW_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/stockflow
GOLANGCI_LINT := $(STOCKFLOW_CACHE)/bin/golangci-lint-$(shell awk '$$1=="github.com/golangci/golangci-lint/v2"{print $$2}' deploy/lint/go.mod)

# Where the integration tests find the real stack (deploy/local defaults).
export STOCKFLOW_TEST_KAFKA ?= 127.0.0.1:9092
export STOCKFLOW_TEST_REDIS ?= 127.0.0.1:6379
# The TLS-only Redis with an ACL user (deploy/local/redis-tls.sh) and the
# directory holding its CA, client certificate and password.
export STOCKFLOW_TEST_REDIS_TLS ?= 127.0.0.1:6390
export STOCKFLOW_TEST_REDIS_TLS_DIR ?= $(CURDIR)/.stack/redis-tls
# The local broker's SASL_SSL listener, its SSL listener requiring client
# certificates, and the directory holding their CA, certificates and the
# SASL user's password (deploy/local/kafka-tls.sh).
export STOCKFLOW_TEST_KAFKA_SASL_SSL ?= 127.0.0.1:9094
export STOCKFLOW_TEST_KAFKA_MTLS ?= 127.0.0.1:9095
export STOCKFLOW_TEST_KAFKA_TLS_DIR ?= $(CURDIR)/.stack/kafka-tls
export STOCKFLOW_TEST_JAEGER ?= http://127.0.0.1:16686
# The local Apicurio Registry's Confluent-compatible API (deploy/local/registry.sh).
export STOCKFLOW_TEST_SCHEMA_REGISTRY ?= http://127.0.0.1:8095/apis/ccompat/v7

.PHONY: bench bench-full screenshots all build run test test-unit test-deploy test-faults test-soak lint fmt-check vet fuzz stack-up stack-down stack-status cluster-up cluster-down cluster-status clean test-cluster

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/stockflow

## run: build, then serve embedded (in-process Kafka and Redis) with simulated traffic
run: build
	@echo "Stockflow on http://127.0.0.1:8080 — the console: http://127.0.0.1:8080/console ; try: curl -s 127.0.0.1:8080/readyz"
	@echo "Embedded Kafka on 127.0.0.1:19092, embedded Redis on 127.0.0.1:16379. Ctrl-C stops."
	./$(BIN) serve -simulate-rate 200 -log-format text

## test: start the real stack when it is not up, then lint, run every test
## against it, and then the fault suite (it restarts the shared broker, so it
## runs after the others)
test: stack-up lint
	$(GO) test -tags integration -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory test-deploy
	$(MAKE) --no-print-directory test-faults

FAULTS = cd cmd/stockflow && $(GO) test -tags faults -count=1 -run TestFaults -v

## test-faults: kill -9, SIGSTOP, broker and Redis restarts against real processes
test-faults: stack-up
	$(FAULTS) -timeout 30m . 2>&1 | tee $(CURDIR)/.stack/faults.log | grep --line-buffered -E '^(=== RUN|--- |PASS|FAIL|ok)|RESULT|faults_test.go'; exit $${PIPESTATUS[0]}

## test-soak: the fault suite's long variants (ten times the events and faults)
test-soak: stack-up
	$(FAULTS) -timeout 4h . -args -soak 2>&1 | tee $(CURDIR)/.stack/soak.log | grep --line-buffered -E '^(=== RUN|--- |PASS|FAIL|ok)|RESULT|faults_test.go'; exit $${PIPESTATUS[0]}

## test-deploy: the Kubernetes manifests under deploy/k8s, decoded strictly,
## built with kustomize and checked (no cluster needed; a module of its own)
test-deploy:
	cd deploy/k8s/check && $(GO) test -count=1 ./...

## test-unit: the fast tests only (no real stack needed)
test-unit:
	$(GO) test -count=1 ./...

## lint: gofmt, go vet under every build tag, and golangci-lint (.golangci.yml),
## the version pinned in deploy/lint/go.mod, built once into the cache
lint: fmt-check vet $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	mkdir -p $(dir $@)
	cd deploy/lint && $(GO) build -o $@.tmp github.com/golangci/golangci-lint/v2/cmd/golangci-lint
	mv $@.tmp $@

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(GO) vet -tags faults ./...
	$(GO) vet -tags failpoints ./...
	$(GO) vet -tags cluster ./...
	$(GO) vet -tags "faults cluster" ./cmd/stockflow

## bench: the quick benchmark on the real stack (200k events); bench-full: 1M events
bench: stack-up build
	./$(BIN) bench -events 200000 -duration 10s | tee .stack/bench.md

bench-full: stack-up build
	./$(BIN) bench -events 1000000 -duration 30s | tee .stack/bench-full.md

## screenshots: the console's pages at 1280x800 and 390x844 into docs/console,
## taken by its browser test on the real stack
screenshots: stack-up
	STOCKFLOW_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -tags integration -count=1 -run TestConsoleInBrowser ./pkg/service

## fuzz: a longer run of every fuzz target (FUZZTIME each)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./pkg/avro/
	$(GO) test -run '^$$' -fuzz '^FuzzLedgerEntry$$' -fuzztime $(FUZZTIME) ./pkg/avro/
	$(GO) test -run '^$$' -fuzz '^FuzzAvailabilityChanged$$' -fuzztime $(FUZZTIME) ./pkg/avro/
	$(GO) test -run '^$$' -fuzz '^FuzzStockAlert$$' -fuzztime $(FUZZTIME) ./pkg/avro/
	$(GO) test -run '^$$' -fuzz '^FuzzCommitmentChanged$$' -fuzztime $(FUZZTIME) ./pkg/avro/
	$(GO) test -run '^$$' -fuzz '^FuzzSourceEvents$$' -fuzztime $(FUZZTIME) ./pkg/avro/
	$(GO) test -run '^$$' -fuzz '^FuzzQueryBody$$' -fuzztime $(FUZZTIME) ./pkg/api/
	$(GO) test -run '^$$' -fuzz '^FuzzHoldBody$$' -fuzztime $(FUZZTIME) ./pkg/api/
	$(GO) test -run '^$$' -fuzz '^FuzzPolicyBody$$' -fuzztime $(FUZZTIME) ./pkg/api/
	$(GO) test -run '^$$' -fuzz '^FuzzTokenizer$$' -fuzztime $(FUZZTIME) ./pkg/api/
	$(GO) test -run '^$$' -fuzz '^FuzzRESPMap$$' -fuzztime $(FUZZTIME) ./pkg/ledger/
	$(GO) test -run '^$$' -fuzz '^FuzzParseIndexRecord$$' -fuzztime $(FUZZTIME) ./pkg/ledger/
	$(GO) test -run '^$$' -fuzz '^FuzzInvariants$$' -fuzztime $(FUZZTIME) ./atp/
	$(GO) test -run '^$$' -fuzz '^FuzzParseChannelRules$$' -fuzztime $(FUZZTIME) ./atp/

stack-up:
	$(STACK) up

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status

## cluster-up: a 3-node Kafka and a 3+3 Redis Cluster on 127.0.0.1 beside the stack (not used by `make test`)
cluster-up:
	$(CLUSTER) up

## cluster-down: stop the local cluster (its data under .stack/cluster is kept)
cluster-down:
	$(CLUSTER) down

## cluster-status: each cluster node's state
cluster-status:
	$(CLUSTER) status

clean:
	rm -rf bin .stack

CLUSTER_ENV = STOCKFLOW_TEST_KAFKA=127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094 STOCKFLOW_TEST_KAFKA_REPLICATION=3 \
	STOCKFLOW_TEST_KAFKA_SASL_SSL=127.0.0.1:29292,127.0.0.1:29293,127.0.0.1:29294 STOCKFLOW_TEST_CLUSTER_SASL=scram-sha-512 \
	STOCKFLOW_TEST_REDIS_CLUSTER=127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003

## test-cluster: the ledger, pipeline and checkout suites, then the failover
## scenarios, on the cluster stack (3 Kafka brokers, a 3+3 Redis Cluster)
test-cluster: cluster-up
	$(CLUSTER_ENV) $(GO) test -tags cluster -count=1 -timeout 30m ./pkg/store ./pkg/ledger ./processors ./pkg/service
	cd cmd/stockflow && $(CLUSTER_ENV) $(GO) test -tags "faults cluster" -count=1 -run TestClusterFaults -v -timeout 40m . 2>&1 \
		| tee $(CURDIR)/.stack/cluster-faults.log | grep --line-buffered -E '^(=== RUN|--- |PASS|FAIL|ok)|RESULT|_test.go'; exit $${PIPESTATUS[0]}
