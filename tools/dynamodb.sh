#!/usr/bin/env bash
# Run DynamoDB Local (the real DynamoDB API, from AWS) on 127.0.0.1.
#
#   tools/dynamodb.sh start [--fresh]   fetch DynamoDB Local (first time), start it, return once it answers
#   tools/dynamodb.sh stop              stop the server started by this script (SIGTERM, SIGKILL after 30 s)
#   tools/dynamodb.sh status            print whether it runs; exit 0 if running, 1 if not
#   tools/dynamodb.sh wait              wait until the started server answers
#
# DynamoDB Local and its dependencies come from Maven Central (via mvn) into .cache/dynamodb.
# In memory (-inMemory -sharedDb) unless DYNAMODB_DATA_DIR is set; pid .run/dynamodb.pid,
# log .run/dynamodb.log. Clients: endpoint_url=http://127.0.0.1:8000, any region, dummy keys.
# Environment:
#   DYNAMODB_VERSION        com.amazonaws:DynamoDBLocal version (default 2.6.1)
#   DYNAMODB_PORT           port (default 8000)
#   DYNAMODB_DATA_DIR       keep tables in this directory (-dbPath DIR -sharedDb) instead of memory
#   DYNAMODB_FRESH=1        same as start --fresh: delete DYNAMODB_DATA_DIR's database first
#   DYNAMODB_JAVA_OPTS      JVM options (default -Xmx512m -Xms64m)
#   DYNAMODB_START_TIMEOUT  seconds to wait for readiness (default 90)
#   PYTHON                  python for the readiness probe (default .venv/bin/python, else python3)
#
# Bind address: DynamoDB Local has no option for it (its -help lists only -port) and its
# Jetty server listens on all interfaces. tools/DynamoDBLocalLoopback.java (compiled once with
# javac into the cache) starts the same server with the connector bound to 127.0.0.1.
set -euo pipefail

# shellcheck disable=SC2034  # NAME, LOG_FILE, PID_MATCH are used by service-common.sh
NAME=dynamodb
# shellcheck source-path=SCRIPTDIR source=service-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/service-common.sh"

usage() { sed -n '2,24s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

DYNAMODB_VERSION=${DYNAMODB_VERSION:-2.6.1}
SQLITE4JAVA_VERSION=1.0.392 # the version DynamoDBLocal 2.x depends on
DYNAMODB_PORT=${DYNAMODB_PORT:-8000}
DYNAMODB_DATA_DIR=${DYNAMODB_DATA_DIR:+$(abs_path "$DYNAMODB_DATA_DIR")}
DYNAMODB_JAVA_OPTS=${DYNAMODB_JAVA_OPTS:--Xmx512m -Xms64m}
DYNAMODB_START_TIMEOUT=${DYNAMODB_START_TIMEOUT:-90}

CACHE_DIR="$ROOT/.cache/dynamodb"
LIB_DIR="$CACHE_DIR/lib"
NATIVE_DIR="$CACHE_DIR/native-libs"
CLASSES_DIR="$CACHE_DIR/classes"
LAUNCHER_SRC="$ROOT/tools/DynamoDBLocalLoopback.java"
PID_FILE="$RUN_DIR/dynamodb.pid"
LOG_FILE="$RUN_DIR/dynamodb.log"
PID_MATCH="$CLASSES_DIR:$LIB_DIR/* DynamoDBLocalLoopback"

for v in DYNAMODB_PORT DYNAMODB_START_TIMEOUT; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a number, got '${!v}'"
done

fetch() {
    case "$(uname -m)" in
    x86_64 | amd64) ;;
    *) die "only linux x86_64 is supported: Maven Central has no sqlite4java native library for $(uname -m)" ;;
    esac
    bash "$ROOT/tools/mvn-fetch.sh" --label "DynamoDB Local $DYNAMODB_VERSION" "$CACHE_DIR" \
        "com.amazonaws:DynamoDBLocal:$DYNAMODB_VERSION" \
        "com.almworks.sqlite4java:libsqlite4java-linux-amd64:$SQLITE4JAVA_VERSION:so"
    # sqlite4java loads "libsqlite4java-linux-amd64.so" from java.library.path.
    local so="$LIB_DIR/libsqlite4java-linux-amd64-$SQLITE4JAVA_VERSION.so"
    [[ -f "$so" ]] || die "$so is missing; delete $CACHE_DIR and retry"
    mkdir -p "$NATIVE_DIR"
    cmp -s "$so" "$NATIVE_DIR/libsqlite4java-linux-amd64.so" || cp "$so" "$NATIVE_DIR/libsqlite4java-linux-amd64.so"
    # Compile the loopback launcher (again whenever the source or the jars change).
    local class="$CLASSES_DIR/DynamoDBLocalLoopback.class"
    if [[ ! -f "$class" || "$LAUNCHER_SRC" -nt "$class" || "$LIB_DIR/.fetched" -nt "$class" ]]; then
        command -v javac >/dev/null 2>&1 ||
            die "javac not found; install a JDK (apt-get install -y openjdk-17-jdk-headless), needed to bind DynamoDB Local to 127.0.0.1"
        rm -rf "$CLASSES_DIR"
        mkdir -p "$CLASSES_DIR"
        javac -nowarn -d "$CLASSES_DIR" -cp "$LIB_DIR/*" "$LAUNCHER_SRC" ||
            die "compiling $LAUNCHER_SRC against DynamoDB Local $DYNAMODB_VERSION failed"
    fi
}

# Ready = a real ListTables call answers (the same request boto3 sends; DynamoDB Local does
# not check signatures). Standard library only.
probe() {
    "$PYTHON" - "$DYNAMODB_PORT" >/dev/null 2>&1 <<'EOF'
import json, sys, urllib.request
req = urllib.request.Request(
    "http://127.0.0.1:%d/" % int(sys.argv[1]), data=b"{}",
    headers={
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Authorization": "AWS4-HMAC-SHA256 Credential=local/20000101/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=host, Signature=0",
    })
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
with opener.open(req, timeout=3) as resp:
    sys.exit(0 if "TableNames" in json.load(resp) else 1)
EOF
}

wipe_data() {
    [[ -n "$DYNAMODB_DATA_DIR" ]] || return 0 # in memory: a restart is already fresh
    say "deleting the database in $DYNAMODB_DATA_DIR"
    rm -f -- "$DYNAMODB_DATA_DIR"/shared-local-instance.db
}

start() {
    local fresh=${DYNAMODB_FRESH:-0} pid
    case "${1:-}" in
    "") ;;
    --fresh) fresh=1 ;;
    *) die "unknown option '$1' for start (only --fresh)" ;;
    esac
    [[ "$fresh" == 0 || "$fresh" == "" ]] && fresh=0 || fresh=1
    pick_python

    if pid=$(running_pid); then
        if [[ "$fresh" == 1 ]]; then
            say "running (pid $pid); restarting it fresh"
            stop_server
        elif probe; then
            say "already running (pid $pid) on http://127.0.0.1:$DYNAMODB_PORT"
            return 0
        else
            say "already started (pid $pid); waiting for it to be ready…"
            wait_ready "$DYNAMODB_START_TIMEOUT" probe
            return 0
        fi
    fi
    rm -f "$PID_FILE"

    need_java
    fetch
    port_free_or_die "$DYNAMODB_PORT"
    if [[ "$fresh" == 1 ]]; then wipe_data; fi

    local storage=(-inMemory -sharedDb) where="in memory"
    if [[ -n "$DYNAMODB_DATA_DIR" ]]; then
        mkdir -p "$DYNAMODB_DATA_DIR"
        storage=(-dbPath "$DYNAMODB_DATA_DIR" -sharedDb)
        where="data $DYNAMODB_DATA_DIR"
    fi
    local java_opts
    read -r -a java_opts <<<"$DYNAMODB_JAVA_OPTS"
    say "starting DynamoDB Local $DYNAMODB_VERSION on http://127.0.0.1:$DYNAMODB_PORT ($where)…"
    launch java "${java_opts[@]}" -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Djava.library.path="$NATIVE_DIR" -Ddynamodb.local.host=127.0.0.1 \
        -cp "$CLASSES_DIR:$LIB_DIR/*" DynamoDBLocalLoopback \
        -port "$DYNAMODB_PORT" "${storage[@]}" -disableTelemetry
    wait_ready "$DYNAMODB_START_TIMEOUT" probe
}

main "${DYNAMODB_START_TIMEOUT}" "$@"
