# netwatcher — see README.md
GO    ?= go
ARGS  ?= -ax
PKGS  ?= ./...

.PHONY: build run test test-kernels deps generate bench clean

build:
	$(GO) build -o bin/netwatcher ./cmd/netwatcher

# sudo make run ARGS='-tixre'
run: build
	./bin/netwatcher $(ARGS)

# Installs the Debian packages the tests use (only the missing ones).
deps:
	./scripts/deps.sh test

# sudo make test — everything, as root, with the race detector.
test: deps
	$(GO) vet ./...
	# -p 1: the tests trace the whole host; packages running side by side
	# would flood each other's tracers with unrelated traffic.
	$(GO) test -race -p 1 -count=1 -timeout 30m $(PKGS)

# sudo make test-kernels — the kernel matrix: netwatcher on Debian's 5.10,
# 6.1, 6.12 (bookworm-backports, trixie) under qemu and on this kernel, each
# judged against scripts/kernels/expect.tsv (~4.5 minutes on 2 cores). A
# subset: ./scripts/kernels/run.sh 6.1 host. See README "Kernel matrix".
test-kernels:
	./scripts/deps.sh kernels
	./scripts/kernels/run.sh

# Rebuilds the committed BPF objects and bpf2go bindings (needs clang, libbpf-dev).
generate:
	./scripts/deps.sh generate
	$(GO) generate ./...

bench: build
	./scripts/deps.sh bench
	./bench/run

clean:
	rm -rf bin data
