# netwatcher — see README.md
GO    ?= go
ARGS  ?= -ax
PKGS  ?= ./...

.PHONY: build run test deps generate bench clean

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

# Rebuilds the committed BPF objects and bpf2go bindings (needs clang, libbpf-dev).
generate:
	./scripts/deps.sh generate
	$(GO) generate ./...

bench: build
	./scripts/deps.sh bench
	./bench/run

clean:
	rm -rf bin data
