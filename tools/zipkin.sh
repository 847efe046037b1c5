#!/usr/bin/env bash
# Run a real Zipkin server (io.zipkin:zipkin-server, in memory) on 127.0.0.1, for traces.
#
#   tools/zipkin.sh start     fetch Zipkin (first time), start it, return once its API answers
#   tools/zipkin.sh stop      stop the server started by this script (SIGTERM, SIGKILL after 30 s)
#   tools/zipkin.sh status    print whether it runs; exit 0 if running, 1 if not
#   tools/zipkin.sh wait      wait until the started server answers
#
# The exec jar comes from Maven Central (via mvn) into .cache/zipkin; pid .run/zipkin.pid,
# log .run/zipkin.log. UI http://127.0.0.1:9411/zipkin/, API http://127.0.0.1:9411/api/v2/,
# spans in at http://127.0.0.1:9411/api/v2/spans (what OTEL_EXPORTER_ZIPKIN_ENDPOINT names).
# Environment:
#   ZIPKIN_VERSION        io.zipkin:zipkin-server version (default 3.6.1)
#   ZIPKIN_PORT           port (default 9411)
#   ZIPKIN_JAVA_OPTS      JVM options (default -Xmx768m -Xms64m)
#   ZIPKIN_MAX_SPANS      spans kept in memory, oldest dropped first (default 200000; ~1 KiB each)
#   ZIPKIN_START_TIMEOUT  seconds to wait for readiness (default 90)
#   PYTHON                python for the readiness probe (default .venv/bin/python, else python3)
#
# Bind address: Zipkin 3 serves with Armeria, whose ports come from the Spring property
# `armeria.ports` (zipkin-server-shared.yml: port QUERY_PORT, every interface). The one port is
# given again here with ip 127.0.0.1; the Armeria admin service rides on that same port, and
# Zipkin opens no other (checked with `ss -ltnp`, see tests/tools/test_zipkin.py).
set -euo pipefail

# shellcheck disable=SC2034  # NAME, LOG_FILE, PID_MATCH are used by service-common.sh
NAME=zipkin
# shellcheck source-path=SCRIPTDIR source=service-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/service-common.sh"

usage() { sed -n '2,23s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

ZIPKIN_VERSION=${ZIPKIN_VERSION:-3.6.1}
ZIPKIN_PORT=${ZIPKIN_PORT:-9411}
ZIPKIN_JAVA_OPTS=${ZIPKIN_JAVA_OPTS:--Xmx768m -Xms64m}
ZIPKIN_MAX_SPANS=${ZIPKIN_MAX_SPANS:-200000}
ZIPKIN_START_TIMEOUT=${ZIPKIN_START_TIMEOUT:-90}
for v in ZIPKIN_PORT ZIPKIN_START_TIMEOUT ZIPKIN_MAX_SPANS; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a number, got '${!v}'"
done

CACHE_DIR="$ROOT/.cache/zipkin"
JAR="$CACHE_DIR/zipkin-server-$ZIPKIN_VERSION-exec.jar"
PID_FILE="$RUN_DIR/zipkin.pid"
LOG_FILE="$RUN_DIR/zipkin.log"
PID_MATCH="$JAR"

# The exec jar is one artifact (classifier `exec`) with its dependencies inside: copied as is.
fetch() {
    [[ -f "$JAR" ]] && return 0
    command -v mvn >/dev/null 2>&1 ||
        die "Maven (mvn) is not installed; install it with: apt-get install -y maven"
    mkdir -p "$CACHE_DIR"
    say "fetching io.zipkin:zipkin-server:$ZIPKIN_VERSION (exec jar) from Maven Central (first time only)…"
    if ! mvn -B -q -Dstyle.color=never \
        org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
        -Dartifact="io.zipkin:zipkin-server:$ZIPKIN_VERSION:jar:exec" \
        -DoutputDirectory="$CACHE_DIR" >"$CACHE_DIR/mvn.log" 2>&1; then
        tail -n 20 "$CACHE_DIR/mvn.log" >&2
        die "Maven could not fetch io.zipkin:zipkin-server:$ZIPKIN_VERSION:exec (log $CACHE_DIR/mvn.log)"
    fi
    [[ -f "$JAR" ]] || die "$JAR is missing after the fetch; see $CACHE_DIR/mvn.log"
}

# Ready = the query API answers (GET /api/v2/services is a JSON list).
probe() {
    "$PYTHON" - "$ZIPKIN_PORT" >/dev/null 2>&1 <<'EOF'
import json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
with opener.open("http://127.0.0.1:%d/api/v2/services" % int(sys.argv[1]), timeout=3) as resp:
    sys.exit(0 if isinstance(json.load(resp), list) else 1)
EOF
}

start() {
    pick_python
    already_running "$ZIPKIN_START_TIMEOUT" "http://127.0.0.1:$ZIPKIN_PORT" && return 0
    rm -f "$PID_FILE"
    need_java
    fetch
    port_free_or_die "$ZIPKIN_PORT"
    local java_opts
    read -r -a java_opts <<<"$ZIPKIN_JAVA_OPTS"
    say "starting Zipkin $ZIPKIN_VERSION on http://127.0.0.1:$ZIPKIN_PORT (in memory)…"
    STORAGE_TYPE=mem MEM_MAX_SPANS="$ZIPKIN_MAX_SPANS" QUERY_PORT="$ZIPKIN_PORT" launch java "${java_opts[@]}" \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -jar "$JAR" \
        "--armeria.ports[0].port=$ZIPKIN_PORT" "--armeria.ports[0].ip=127.0.0.1" \
        "--armeria.ports[0].protocols[0]=http"
    wait_ready "$ZIPKIN_START_TIMEOUT" probe
}

main "${ZIPKIN_START_TIMEOUT}" "$@"
