# Switchyard. Every target builds from vendor/ and works offline.
SHELL := /usr/bin/env bash
GO ?= go
export GOFLAGS := -mod=vendor
# Integration test timeout: cold builds of the API server take minutes on two cores.
INTEGRATION_TIMEOUT ?= 40m
# gotestsum prints one summary line at the end, which CI reads.
GOTESTSUM = $(GO) run gotest.tools/gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg --

.PHONY: all build tools test test-unit test-integration verify bench demo image clean

all: build

## build: the Switchyard binaries into bin/
build:
	$(GO) build -trimpath -o bin/ ./cmd/...

## tools: etcd, kube-apiserver, kubectl, kube-scheduler and code generators from vendor/ (cached)
tools:
	@hack/build-tools.sh >/dev/null

## test: everything CI runs: verify, unit tests, integration tests
test: verify
	KUBEBUILDER_ASSETS="$$(hack/build-tools.sh)" $(GOTESTSUM) -count=1 -timeout $(INTEGRATION_TIMEOUT) ./...

## test-unit: tests that need no control plane
test-unit:
	$(GOTESTSUM) -count=1 $$($(GO) list ./... | grep -v /test/integration)

## test-integration: tests against a real kube-apiserver + etcd (and RabbitMQ)
test-integration: tools
	KUBEBUILDER_ASSETS="$$(hack/build-tools.sh)" $(GOTESTSUM) -count=1 -timeout $(INTEGRATION_TIMEOUT) ./test/integration/...

## verify: gofmt, go vet, vendor and generated code up to date
verify:
	hack/verify.sh

# BENCH_FLAGS sizes the benchmark; the defaults finish in minutes on two cores.
BENCH_FLAGS ?= -nodes 100,1000 -pods 1000 -rounds 2

## bench: Switchyard vs upstream kube-scheduler on the real control plane, side by side, with ratios (BENCH_FLAGS to size it)
bench: tools
	$(GO) build -trimpath -o _output/bin/ ./cmd/switchyard-scheduler ./cmd/switchyard-coordinator ./cmd/switchyard-shortjob
	$(GO) test -run '^$$' -bench Score -benchtime 200x ./pkg/scheduler/plugins/usageaware | tee _output/bench-usageaware.txt
	$(GO) test -run '^$$' -bench PublishConfirmed -benchtime 5000x ./pkg/broker | tee _output/bench-broker.txt
	$(GO) test -run '^$$' -bench 'AgentStep|ReactionTime' -benchtime 50x ./pkg/agent | tee _output/bench-agent.txt
	$(GO) test -count=1 -run TestReplayTable -v ./pkg/agent/replay | tee _output/bench-agent-replay.txt
	$(GO) test -run '^$$' -bench RealV1Reaction -benchtime 10x ./pkg/agent | tee -a _output/bench-agent.txt
	KUBEBUILDER_ASSETS="$$(hack/build-tools.sh)" $(GO) test -run '^$$' -bench ConfiguratorBroadcast -benchtime 20x ./test/integration | tee _output/bench-configurator.txt
	KUBEBUILDER_ASSETS="$$(hack/build-tools.sh)" $(GO) run ./test/perf $(BENCH_FLAGS)

## demo: local control plane, simulated nodes, the scheduler and a mixed workload (DEMO_FLAGS=--keep to leave it running)
demo: tools
	KUBEBUILDER_ASSETS="$$(hack/build-tools.sh)" $(GO) run ./hack/demo $(DEMO_FLAGS)

## image: one image with every binary (needs a container engine; none runs in CI here)
image:
	docker build -t ghcr.io/switchyard-sched/switchyard:dev .

## clean: remove build output and cached tool builds
clean:
	rm -rf bin _output
