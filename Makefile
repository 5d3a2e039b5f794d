# kvmnet — see README.md. Every target runs as root on Debian 12; `make deps` installs what they need.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(shell go env GOPATH 2>/dev/null)/bin

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin
# grpcnotrace drops golang.org/x/net/trace (html/template, reflect-heavy): 15.0 -> 11.2 MB (BENCHMARKS.md).
GOFLAGS_AGENT := CGO_ENABLED=0 go build -tags grpcnotrace -trimpath -ldflags '$(LDFLAGS)'

.PHONY: all deps generate build build-agent build-ctl test test-unit test-integration test-lab fuzz-short \
        lint bench bench-lab packages lab-packages man lab-up lab-down demo clean

all: build

## deps: install the Debian packages and Go tools every other target needs (idempotent).
deps:
	bash scripts/install-deps.sh

## generate: regenerate proto/ Go code with Debian's protoc and the pinned go tool plugins.
generate:
	protoc -I proto -I /usr/include \
	  --plugin=protoc-gen-go="$$(go tool -n protoc-gen-go)" \
	  --plugin=protoc-gen-go-grpc="$$(go tool -n protoc-gen-go-grpc)" \
	  --go_out=proto --go_opt=paths=source_relative \
	  --go-grpc_out=proto --go-grpc_opt=paths=source_relative \
	  proto/kvmnet/v1/agent.proto

## build: the static agent and the controller into bin/.
build: build-agent build-ctl

build-agent:
	$(GOFLAGS_AGENT) -o $(BIN)/kvmnet-agent ./agent/cmd/kvmnet-agent

build-ctl:
	go build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/kvmnetctl ./controller/cmd/kvmnetctl

## test: everything CI runs — lint, unit (race), integration in namespaces, short fuzz, lab e2e.
test: deps lint test-unit test-integration fuzz-short test-lab

## test-unit: the whole tree with -race; integration tests inside it need root (KVMNET_INTEGRATION=0 skips them loudly).
test-unit:
	go test -race -count=1 ./...

test-integration:
	@echo "integration tests run inside test-unit (they need root; see README)"

fuzz-short:
	bash scripts/fuzz.sh 10s

## test-lab: real QEMU guests under a private libvirtd (KVMNET_LAB=0 skips explicitly).
test-lab: build lab-packages
	bash scripts/lab/e2e.sh

lint:
	@out=$$(gofmt -l agent controller proto scripts); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	go vet ./...
	go vet -tags lab ./controller/e2e/...
	staticcheck ./...
	staticcheck -tags lab ./controller/e2e/...
	promtool check rules packaging/prometheus/kvmnet.rules.yml
	cd packaging/prometheus && promtool test rules kvmnet.rules.test.yml

## bench: benchmarks that print numbers (see BENCHMARKS.md).
bench: build
	bash scripts/bench.sh

## bench-lab: RPC latency over the real virtio-serial channel of one booted lab guest (own lab
## kvmnet-lab-bench, torn down afterwards; see scripts/lab/bench).
bench-lab: build lab-packages
	bash scripts/lab/bench

## packages: .deb and .rpm for amd64 and arm64 into dist/.
packages:
	bash packaging/build.sh $(VERSION)

## lab-packages: only what the lab needs: the amd64 agent .deb its x86_64 guests install, kvmnetctl
## for the build machine (no arm64 cross builds: minutes on a cold cache).
lab-packages:
	AGENT_ARCHES=amd64 CTL_ARCHES=$$(go env GOARCH) bash packaging/build.sh $(VERSION)

man: build-ctl
	mkdir -p dist/man && $(BIN)/kvmnetctl man --dir dist/man

lab-up: build lab-packages
	bash scripts/lab/up

lab-down:
	bash scripts/lab/down

## demo: the main job — set up, build, start the lab, show a broken guest diagnosed and fixed.
demo: deps build lab-packages
	bash scripts/lab/demo

clean:
	rm -rf $(BIN) dist
