# bootyard — build, run, test.
#
#   make run     the embedded demo on 127.0.0.1 (no configuration needed)
#   make test    installs what the tests need (Debian packages, pinned Go
#                tools), then lint + every test, including real clients
#   make bench   side-by-side benchmarks (not part of make test)

SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
GO ?= go
BIN := bin/bootyard
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
STATICCHECK_VERSION := v0.8.2

# Debian packages the tests drive as real clients and peers.
TEST_DEBS := curl tftp-hpa atftp busybox-static lftp iproute2 isc-dhcp-client \
	nmap kea-admin strace procps python3 ca-certificates

.PHONY: all build run test test-go e2e lint deps tools clean bench fuzz

all: build

build:
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/bootyard

run: build
	./$(BIN) serve

# deps installs missing Debian packages; apt-get update runs once, only
# when something is missing.
deps:
	@missing=""; for p in $(TEST_DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "make deps: need root to install$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing </dev/null; \
	fi

tools:
	@test -x "$$(go env GOPATH)/bin/staticcheck" && "$$(go env GOPATH)/bin/staticcheck" -version | grep -q "$(STATICCHECK_VERSION:v%=%)" || \
	  $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/
	"$$($(GO) env GOPATH)/bin/staticcheck" ./...
	"$$($(GO) env GOPATH)/bin/staticcheck" -tags e2e ./e2e/

test: deps lint test-go e2e

test-go:
	$(GO) test -count=1 -timeout 15m ./...

# e2e network-boots real QEMU machines (BIOS and UEFI, DHCP server and proxy
# mode) from bootyard; it needs root (network namespaces, tap devices).
E2E_DEBS := qemu-system-x86 ipxe-qemu ipxe ovmf busybox-static dnsmasq-base iproute2 curl python3-pyftpdlib
e2e:
	@$(MAKE) --no-print-directory deps TEST_DEBS="$(E2E_DEBS)"
	$(GO) test -tags e2e -count=1 -v -timeout 20m ./e2e/

# bench measures bootyard side by side with tftpd-hpa, atftpd, dnsmasq,
# vsftpd, proftpd and Kea (installed from Debian into a scratch directory)
# and writes bench/RESULTS.md. Not part of make test; needs root.
bench:
	$(GO) run ./bench/cmd/benchall -out bench/RESULTS.md

# fuzz runs every fuzz target briefly (FUZZTIME each).
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; done

clean:
	rm -rf bin
	$(GO) clean -testcache
