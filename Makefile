# warren: run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
# The tests' broker (brokertest reads AMQP_URL, as amqp091-go's tests do); warren's
# programs read WARREN_URL (docs/operations.md, "Configuration").
AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/
export AMQP_URL
# A count of executions (N x), not a duration: with a duration, Go up to
# 1.26 can fail a fuzz test with a bare "context deadline exceeded" and no
# failing input when the time runs out while a worker is mid-run
# (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 100000x
SOAK_MINUTES ?= 10
TORTURE_JOBS ?= 2000
TORTURE_MINUTES ?= 10
BIN := bin/warren
# RABBITMQ=4.0 or 4.3: test against a private node of that RabbitMQ release
# (scripts/rabbitmq4.sh test-node: built and started on first use, then
# reused) instead of the local broker; the nodes the tests start themselves
# run that release too (WARREN_RABBITMQ_VERSION).
RABBITMQ ?=
ifneq ($(RABBITMQ),)
BROKER_ENV = eval "$$(scripts/rabbitmq4.sh test-node $(RABBITMQ))" &&
endif

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

.PHONY: broker
broker: ## Start (or check) the local RabbitMQ broker, with the management plugin (RABBITMQ=4.3: a private 4.3 node)
ifeq ($(RABBITMQ),)
	@scripts/rabbitmq.sh
else
	@scripts/rabbitmq4.sh test-node $(RABBITMQ)
endif

.PHONY: cluster
cluster: ## Start a private 3-node RabbitMQ cluster on ports 5701-5703 and print its URLs
	@scripts/cluster.sh start

.PHONY: cluster-stop
cluster-stop: ## Stop the private cluster and delete its data
	@scripts/cluster.sh stop

.PHONY: build
build: ## Build the warren CLI into bin/
	$(GO) build -o $(BIN) ./cmd/warren

.PHONY: demo
demo: broker build ## Run the quickstart end to end on the local broker
	@scripts/demo.sh

.PHONY: taxi
taxi: broker services build ## Run the taxi-booking example: each booking an orchestrated saga (authorise, reserve a driver, charge, confirm; compensations), events to subscribers, request-reply (PostgreSQL: DATABASE_URL, schema taxi)
	$(BIN) topology validate -f examples/taxi/topology.yaml
	WARREN_URL=$${WARREN_URL:-$$AMQP_URL} $(GO) run ./examples/taxi

.PHONY: asyncapi
asyncapi: ## Regenerate docs/asyncapi/taxi.yaml (warren asyncapi of the taxi example) and check it with the official AsyncAPI parser
	$(GO) test ./contract/asyncapi -count=1 -run TestTaxiDocument -update
	@scripts/asyncapi-deps.sh
	node scripts/asyncapi-validate.mjs --strict docs/asyncapi/taxi.yaml

.PHONY: deps
deps: ## Install the Debian packages the tests need (python3-amqp, python3-msgpack, chromium) unless they are there
	@scripts/deps.sh

.PHONY: services
services: ## Make sure PostgreSQL (127.0.0.1:5432, database test) and Redis (127.0.0.1:6379) answer, for the inbox, unique-job and outbox tests: start or install them (DATABASE_URL / REDIS_URL: yours, left alone)
	@scripts/services.sh

.PHONY: test
test: broker deps services test-amqp091 ## Run the unit and broker tests (with -race; not the fault suite, torture or soak), a line per package as it finishes; full log in bin/test.log (RABBITMQ=4.0|4.3: against a private node of that release)
	@mkdir -p bin; $(BROKER_ENV) $(GO) test -race -count=1 -timeout 5m ./... 2>&1 | tee bin/test.log | \
		grep --line-buffered -E '^(ok|FAIL|panic)|^\s*--- FAIL|_test\.go:[0-9]+:|goleak|DATA RACE|race detected'; \
		rc=$${PIPESTATUS[0]}; if [ $$rc -ne 0 ]; then echo "test failed (exit $$rc); the last lines of bin/test.log:"; tail -n 80 bin/test.log; fi; exit $$rc

.PHONY: test-flow
test-flow: broker ## Run only the flow-control tests (periodic jobs, pause, circuit breakers, rate limits, failing fast) with -race; CI runs them on RabbitMQ 4.3 too (RABBITMQ=4.3)
	@mkdir -p bin; $(BROKER_ENV) $(GO) test -race -count=1 -timeout 10m -v \
		-run 'Schedul|Replica|Pause|Paused|Breaker|Trip|RateLimit|CallFailsFast|CallCheck|CallWithoutCheck|ConsumerCheck' \
		./scheduler ./worker ./broker ./cmd/warren 2>&1 | tee bin/test-flow.log | \
		grep --line-buffered -E '^(\s*--- FAIL|ok|FAIL|panic)|_test\.go:[0-9]+:|DATA RACE|race detected'; exit $${PIPESTATUS[0]}

.PHONY: screenshots
screenshots: broker deps ## Write the dashboard's screenshots (docs/dashboard/*.png, 1280 and 390 px wide) from headless Chromium
	$(GO) test -count=1 -run TestScreenshots ./dashboard -screenshots docs/dashboard -v 2>&1 | grep -E 'wrote|^(ok|FAIL|---)|_test\.go'; exit $${PIPESTATUS[0]}

.PHONY: test-e2e
test-e2e: broker deps ## Run only the dashboard's end-to-end scenarios in headless Chromium (make test runs them too), and the demo replayed in the dashboard
	$(GO) test -race -count=1 -timeout 10m -run 'TestE2E|TestDemoReplayGroupInDashboard' -v ./dashboard ./examples/quickstart 2>&1 | grep --line-buffered -E '^(=== RUN|\s*---|ok|FAIL|panic)|_test\.go|DATA RACE'; exit $${PIPESTATUS[0]}

.PHONY: test-amqp091
test-amqp091: ## Run the unit tests of the patched amqp091-go copy (third_party/, a module of its own)
	$(GO) -C third_party/amqp091-go test -race -count=1 -timeout 5m .

.PHONY: patch-diff
patch-diff: ## Write third_party/amqp091-go/WARREN-PATCH.diff (the copy against its upstream release)
	@scripts/amqp091-patch.sh

.PHONY: test-faults
test-faults: broker ## Run the fault suite: private RabbitMQ nodes killed, stopped, alarmed, clustered; prints each ledger (RABBITMQ=4.3: 4.3 nodes)
	@mkdir -p bin; $(BROKER_ENV) $(GO) test -tags faults -race -count=1 -timeout 15m -v -run . ./internal/faults/ 2>&1 | tee bin/test-faults.log | \
		grep --line-buffered -E '^(=== RUN|\s*---|ok|FAIL|panic)|ledger:|first publish|_test.go|goleak|DATA RACE|race detected'; \
		rc=$${PIPESTATUS[0]}; if [ $$rc -ne 0 ]; then echo "test-faults failed (exit $$rc); the last lines of bin/test-faults.log:"; tail -n 80 bin/test-faults.log; fi; exit $$rc

.PHONY: torture
torture: broker services ## Lifecycle torture test (with -race; about 3 minutes): TORTURE_JOBS (default 2000) jobs of every behaviour, workers killed and disconnected; then TORTURE_JOBS/2 through the outbox and the inbox, TORTURE_JOBS/10 chains and as many sagas with compensations, relays, coordinators and workers killed; prints the ledgers (TORTURE_SEED replays a run; RABBITMQ=4.3: on a 4.3 node)
	@mkdir -p bin; $(BROKER_ENV) TORTURE_SEED=$(TORTURE_SEED) TORTURE_JOBS=$(TORTURE_JOBS) TORTURE_MINUTES=$(TORTURE_MINUTES) \
		$(GO) test -race -tags torture -count=1 -timeout 20m -v -run 'TestLedgerCheck|TestTorture|TestEffects|TestChains|TestSagas' ./internal/torture/ 2>&1 | tee bin/torture.log | \
		grep --line-buffered -E '^(=== RUN|\s*---|ok|FAIL|panic)|torture|_test.go|goleak|DATA RACE'; exit $${PIPESTATUS[0]}

.PHONY: soak
soak: ## Soak run (not in CI): SOAK_MINUTES (default 10) of mixed load and random faults on a private node; prints the ledger and memory every 30s
	SOAK_MINUTES=$(SOAK_MINUTES) $(GO) test -tags faults,soak -count=1 -timeout 0 -v -run TestSoak ./internal/faults/

.PHONY: fuzz
fuzz: ## Run each fuzz test for FUZZTIME executions (default 100000x; a duration such as 20s works too); third_party/ keeps its upstream's own
	@set -e; for target in $$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' --exclude-dir=third_party . | sed 's/func //' | sort -u); do \
		pkg=$$(grep -rlE "^func $$target\(" --include='*_test.go' --exclude-dir=third_party . | xargs -n1 dirname | sort -u); \
		echo "fuzz $$target in $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

.PHONY: bench
bench: broker ## Run the Go benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: bench-e2e
bench-e2e: build ## warren bench --baseline for classic and quorum queues
	$(BIN) bench --baseline --queue-type both

.PHONY: bench-report
bench-report: broker ## The measurements of docs/benchmarks.md (scripts/bench.sh; SECTIONS="jobs rpc scaling rabbitmq4")
	scripts/bench.sh $(SECTIONS)

.PHONY: fmt
fmt: ## Format the code
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: ## gofmt, go vet, go mod tidy, InsecureSkipVerify and third-party patch checks
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@out=$$(git ls-files --cached --others --exclude-standard '*.go' | grep -v '_test\.go$$' | xargs -r grep -sn 'InsecureSkipVerify'); \
		if [ -n "$$out" ]; then echo "InsecureSkipVerify outside tests: warren must verify the broker's certificate (give WithTLS a tls.Config with RootCAs instead; see docs/security.md):"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags faults ./internal/faults/
	$(GO) vet -tags faults,soak ./internal/faults/
	$(GO) -C third_party/amqp091-go vet .
	@scripts/amqp091-patch.sh --check
	$(GO) vet -tags torture ./internal/torture/
	@cp go.mod /tmp/warren-go.mod.bak && cp go.sum /tmp/warren-go.sum.bak && $(GO) mod tidy && \
		if ! cmp -s go.mod /tmp/warren-go.mod.bak || ! cmp -s go.sum /tmp/warren-go.sum.bak; then \
		echo "go mod tidy changed go.mod/go.sum: commit the result"; exit 1; fi

.PHONY: clean
clean: ## Remove build output
	rm -rf bin
