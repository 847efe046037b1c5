# The two commands a user needs: `make run` and `make test`. Everything else is listed by `make help`.
#
# Switches (environment or `make VAR=value`): BROKER=inmemory|kafka|rabbitmq|nats, STORE=sqlite|dynamodb,
# PROFILE=local|knative. See the README for every setting.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

export BROKER ?= inmemory
export STORE ?= sqlite

.PHONY: help install run status test test-unit lint format kafka kafka-stop dynamodb dynamodb-stop clean
.PHONY: rabbitmq rabbitmq-stop nats nats-stop zipkin zipkin-stop
.PHONY: dynamodb-tables
.PHONY: burst bench

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (first time only)…"
	@$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## create .venv and install the project with its dev tools

run: $(STAMP) ## run the whole system locally (BROKER=…, STORE=…, FAULTS=plan.yaml); Ctrl-C stops it
	@if [ "$(BROKER)" = kafka ]; then bash tools/kafka.sh status >/dev/null || { echo "BROKER=kafka needs Kafka: run 'make kafka' first"; exit 1; }; fi
	@if [ "$(BROKER)" = rabbitmq ]; then bash tools/rabbitmq.sh status >/dev/null || { echo "BROKER=rabbitmq needs RabbitMQ: run 'make rabbitmq' first"; exit 1; }; fi
	@if [ "$(BROKER)" = nats ]; then bash tools/nats.sh status >/dev/null || { echo "BROKER=nats needs NATS: run 'make nats' first"; exit 1; }; fi
	@if [ "$(STORE)" = dynamodb ]; then bash tools/dynamodb.sh status >/dev/null || { echo "STORE=dynamodb needs DynamoDB Local: run 'make dynamodb' first"; exit 1; }; fi
	@# Traces go to Zipkin when it runs (make zipkin) and the OTEL_* variables choose nothing else.
	@if [ -z "$${OTEL_TRACES_EXPORTER:-}" ] && timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/9411" 2>/dev/null; then \
		echo "tracing: exporting to Zipkin (http://127.0.0.1:9411/zipkin/); knlocal trace <operation-id>"; \
		export OTEL_TRACES_EXPORTER=zipkin; fi; exec $(BIN)/knlocal run

status: $(STAMP) ## live table of services and triggers of a running `make run`
	$(BIN)/knlocal status --watch

test: $(STAMP) ## run every test (servers they need must be running: see .ci/run)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

kafka: ## start a single-node Kafka (KRaft) on 127.0.0.1:9092, fetched from Maven Central
	bash tools/kafka.sh start

kafka-stop: ## stop it
	bash tools/kafka.sh stop

rabbitmq: ## start RabbitMQ (Debian's rabbitmq-server, installed if missing) on 127.0.0.1:5672
	bash tools/rabbitmq.sh start

rabbitmq-stop: ## stop it
	bash tools/rabbitmq.sh stop

nats: ## start nats-server with JetStream (Debian's package, installed if missing) on 127.0.0.1:4222
	bash tools/nats.sh start

nats-stop: ## stop it
	bash tools/nats.sh stop

zipkin: ## start a Zipkin server on 127.0.0.1:9411 (traces; `make run` exports to it), fetched from Maven Central
	bash tools/zipkin.sh start

zipkin-stop: ## stop it
	bash tools/zipkin.sh stop

dynamodb: ## start DynamoDB Local on 127.0.0.1:8000, fetched from Maven Central
	bash tools/dynamodb.sh start

dynamodb-stop: ## stop it
	bash tools/dynamodb.sh stop

# Default: DynamoDB Local, as `make run`; `make dynamodb-tables DYNAMODB_ENDPOINT=` creates them in AWS.
dynamodb-tables: $(STAMP) ## create the DynamoDB tables now (they are also created on first use)
	DYNAMODB_ENDPOINT=$${DYNAMODB_ENDPOINT-http://127.0.0.1:8000} $(BIN)/python -m functions.stores.dynamodb

# N users at RATE/s, at most CONCURRENCY POSTs in flight, against URL (default: `make run`'s ingress).
burst: $(STAMP) ## burst of user creations at a running runtime, report + plot in bench/results (N=… RATE=… CONCURRENCY=… URL=…)
	$(BIN)/knlocal burst $(if $(N),-n $(N)) $(if $(RATE),--rate $(RATE)) $(if $(CONCURRENCY),--concurrency $(CONCURRENCY)) $(if $(URL),--url $(URL)) $(if $(ADMIN),--admin $(ADMIN))

bench: $(STAMP) ## the issue-3 benchmark (cold start, 100/s, sustained rate, vs functions-framework), then bench-tracing if Zipkin runs → bench/results
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	@if [ -f .run/zipkin.pid ]; then $(MAKE) --no-print-directory bench-tracing; \
	else echo "bench: Zipkin is not running: tracing's cost not measured (make zipkin, then make bench-tracing)"; fi

clean: ## remove local data and logs (not the downloaded servers)
	rm -rf .data .run/*.log

# --- the cluster path (docs/cluster.md) -----------------------------------------------------------
# IMAGE: the function image to build and to deploy; point it at your registry for a real cluster.
IMAGE ?= dev.local/knuser-functions:0.1.0
# TRACING=otlp: the Services export spans to deploy/tracing/otlp.env's OTLP_ENDPOINT (docs/cluster.md).
TRACING ?=
.PHONY: image manifests deploy undeploy cluster-check deploy-tracing undeploy-tracing

image: ## build the function image IMAGE with docker, else podman (BASE_IMAGE=local: no registry)
	@if command -v docker >/dev/null && docker info >/dev/null 2>&1; then \
		docker build -f Dockerfiles/functions.Dockerfile -t '$(IMAGE)' \
			$${BASE_IMAGE:+--build-arg BASE_IMAGE=$$BASE_IMAGE} . ; \
	elif command -v podman >/dev/null; then \
		IMAGE='$(IMAGE)' bash tools/podman.sh build; \
	else \
		echo "make image needs docker with a running daemon, or podman"\
			"(as root: bash tools/podman.sh install)"; exit 1; \
	fi

manifests: ## print the YAML `make deploy` applies (BROKER=inmemory|kafka|rabbitmq|nats, IMAGE=…, TRACING=otlp)
	@BROKER='$(BROKER)' IMAGE='$(IMAGE)' TRACING='$(TRACING)' bash deploy/render.sh

deploy: $(STAMP) ## apply the manifests to kubectl's current cluster; switches BROKER on a live cluster (BROKER=inmemory|kafka|rabbitmq|nats, IMAGE=…)
	BROKER='$(BROKER)' IMAGE='$(IMAGE)' TRACING='$(TRACING)' PYTHON='$(BIN)/python' bash deploy/deploy.sh

undeploy: ## delete what deploy created (nothing of the Knative install: the bundle has none of it)
	BROKER='$(BROKER)' IMAGE='$(IMAGE)' TRACING='$(TRACING)' bash deploy/render.sh | kubectl delete --ignore-not-found -f -

deploy-tracing: ## make Knative's activator, queue-proxies and brokers export traces (config-observability; OTLP_ENDPOINT=…)
	bash deploy/tracing.sh apply

undeploy-tracing: ## remove the tracing keys from config-observability again (Knative's default: no tracing)
	bash deploy/tracing.sh remove

# A real kube-apiserver and Knative control plane judge the manifests of every broker
# (docs/cluster.md). CLUSTER_CHECK_CACHE: where the built binaries are kept (default .run/).
cluster-check: $(STAMP) ## the manifests of every broker against a real kube-apiserver + Knative v0.50 (root; first run builds ~15 min)
	PYTHON='$(BIN)/python' bash tools/cluster/check.sh

.PHONY: bench-kafka
bench-kafka: $(STAMP) ## the Kafka backend benchmark (events/s vs kafka-python, 100 users/s on BROKER=kafka; starts its own Kafka) → bench/results
	$(BIN)/python -m bench.bench_kafka $(BENCH_ARGS)

.PHONY: bench-tracing
bench-tracing: $(STAMP) ## tracing's CPU per user, untraced vs every operation traced to Zipkin, same run (needs make zipkin) → bench/results
	$(BIN)/python -m bench.bench_tracing $(BENCH_ARGS)

.PHONY: bench-brokers
bench-brokers: $(STAMP) ## RabbitMQ and NATS backends' events/s beside aio-pika / nats-py (needs make rabbitmq nats) → bench/results
	$(BIN)/python -m bench.bench_brokers $(BENCH_ARGS)
