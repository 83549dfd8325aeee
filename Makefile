# Tidemark — continuous backup and point-in-time recovery for PostgreSQL event stores.
# `make` lists the targets. Every target installs or builds what it needs.

SHELL        := /bin/bash
GO           ?= go
export GOFLAGS := -mod=mod
PG_BIN       := /usr/lib/postgresql/15/bin
BIN          := bin
PROGRAMS     := capture archiver restorer loadgen
TEST_TIMEOUT ?= 14m
FUZZTIME     ?= 5s
SCENARIO     ?=
SEED         ?= 1

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@echo "Tidemark make targets:"
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install system packages the servers need (PostgreSQL 15)
	@if [ ! -x $(PG_BIN)/postgres ]; then \
		echo "installing postgresql-15 (needed by the test rig)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql-15 postgresql-client-15 >/dev/null; \
	fi
	@$(PG_BIN)/postgres --version

.PHONY: tools
tools: $(BIN)/nats-server $(BIN)/versitygw ## build the pinned server binaries (nats-server, versitygw) from go.mod

$(BIN)/nats-server:
	$(GO) build -o $@ github.com/nats-io/nats-server/v2

$(BIN)/versitygw:
	$(GO) build -o $@ github.com/versity/versitygw/cmd/versitygw

.PHONY: build
build: ## build capture, archiver, restorer and loadgen into bin/
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(PROGRAMS))

.PHONY: test
test: deps tools lint ## lint, run every test against real PostgreSQL, NATS and S3 servers, then every fuzz target for FUZZTIME (5s) each
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -race -tags failpoints -run 'TestCrashHook' ./cmd/archiver
	GO=$(GO) .ci/fuzz $(FUZZTIME)

.PHONY: demo
demo: deps tools build ## run the whole pipeline on embedded defaults and print a summary
	$(GO) run ./cmd/demo

.PHONY: bench
bench: deps tools build ## measure throughput, latency and memory against same-run baselines
	$(GO) run ./cmd/bench

.PHONY: chaos
chaos: deps tools build ## run the fault-injection scenarios (SCENARIO=name SEED=n for one)
	TIDEMARK_CHAOS=all TIDEMARK_CHAOS_SCENARIO=$(SCENARIO) TIDEMARK_CHAOS_SEED=$(SEED) \
		$(GO) test -race -timeout 60m -count=1 -v -run 'TestChaos' ./internal/testing/chaos

.PHONY: fuzz
fuzz: ## fuzz the segment decoder for longer (FUZZTIME=10m)
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=$(if $(filter 5s,$(FUZZTIME)),5m,$(FUZZTIME)) ./internal/segment

.PHONY: lint
lint: ## gofmt, go vet and staticcheck (pinned in go.mod)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags failpoints ./cmd/archiver
	$(GO) tool staticcheck ./...

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN)
