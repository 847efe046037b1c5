# shellcheck shell=bash disable=SC2034
# Shared helpers for tools/kafka.sh, dynamodb.sh, rabbitmq.sh and nats.sh (sourced, not run).
#
# The caller sets NAME (for messages), PID_FILE, LOG_FILE and PID_MATCH (a string
# that must appear in the process's command line, so that a recycled pid is never
# mistaken for our server) before using the functions below, and defines usage(), probe()
# (true once the server serves clients) and start(); its last line is `main TIMEOUT "$@"`.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN_DIR="$ROOT/.run"

say() { echo "$NAME: $*"; }
die() { echo "$NAME: error: $*" >&2; exit 1; }

# Absolute path; a relative one is taken relative to the caller's directory.
abs_path() { realpath -m -- "$1"; }

need_java() {
    command -v java >/dev/null 2>&1 ||
        die "java not found; install a Java 17+ runtime (apt-get install -y openjdk-17-jre-headless)"
    local v
    v=$(java -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ {print $2}')
    if ! [[ "${v%%.*}" =~ ^[0-9]+$ ]] || (( ${v%%.*} < 17 )); then
        die "Java 17+ is needed, found '${v:-unknown}' ($(command -v java)); install openjdk-17-jre-headless"
    fi
}

# Python used for readiness probes (standard library only): $PYTHON, else the
# project's .venv, else python3.
pick_python() {
    if [[ -z "${PYTHON:-}" ]]; then
        if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
    fi
    command -v "$PYTHON" >/dev/null 2>&1 || die "python not found ('$PYTHON'); set PYTHON=/path/to/python3"
}

# True if process PID exists and is not a zombie.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# Prints the pid from PID_FILE if that process is alive and is our server.
running_pid() {
    local pid
    [[ -f "$PID_FILE" ]] || return 1
    pid=$(tr -dc '0-9' <"$PID_FILE")
    [[ -n "$pid" ]] && alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$PID_MATCH" || return 1
    echo "$pid"
}

# True if something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

port_free_or_die() {
    local port
    for port in "$@"; do
        ! port_open "$port" ||
            die "port $port is already in use by another process (not started by this script); stop it or pick another port"
    done
}

# Serialize start/stop of this server (e.g. several test processes calling start at once).
# launch() closes fd 8 for the server so that it does not inherit the lock.
take_lock() {
    mkdir -p "$RUN_DIR"
    exec 8>"$RUN_DIR/$NAME.lock"
    flock -w 180 8 || die "another '$0' is still running (lock $RUN_DIR/$NAME.lock)"
}

# launch CMD...: start CMD in its own session (it survives the calling shell),
# stdout+stderr to LOG_FILE, pid to PID_FILE.
launch() {
    mkdir -p "$RUN_DIR"
    : >"$LOG_FILE"
    setsid nohup "$@" >>"$LOG_FILE" 2>&1 </dev/null 8>&- &
    echo $! >"$PID_FILE"
}

# wait_ready TIMEOUT PROBE_FUNCTION: poll until the probe succeeds; fail early if
# the process dies, or after TIMEOUT seconds, pointing at the log.
wait_ready() {
    local timeout=$1 probe=$2 pid start=$SECONDS
    while true; do
        if ! pid=$(running_pid); then
            # Right after launch the pid may still be the forked shell, not yet exec'd into the
            # server (its command line is the script's): wait while that pid lives.
            pid=$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)
            if [[ -n "$pid" ]] && alive "$pid" && (( SECONDS - start < timeout )); then
                sleep 0.1
                continue
            fi
            echo "---- last lines of $LOG_FILE ----" >&2
            tail -n 25 "$LOG_FILE" >&2 2>/dev/null || true
            rm -f "$PID_FILE"
            die "the server exited during startup; see $LOG_FILE"
        fi
        if "$probe"; then
            say "ready after $((SECONDS - start)) s (pid $pid, log $LOG_FILE)"
            return 0
        fi
        if (( SECONDS - start >= timeout )); then
            die "not ready after ${timeout} s (pid $pid still running); see $LOG_FILE, or stop it with: $0 stop"
        fi
        sleep 0.5
    done
}

stop_server() {
    local pid i
    if ! pid=$(running_pid); then
        rm -f "$PID_FILE"
        say "not running"
        return 0
    fi
    say "stopping (pid $pid)…"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        alive "$pid" || break
        sleep 0.5
    done
    if alive "$pid"; then
        say "still running after 30 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do
            alive "$pid" || break
            sleep 0.25
        done
    fi
    rm -f "$PID_FILE"
    say "stopped"
}

status_server() {
    local pid
    if pid=$(running_pid); then
        say "running (pid $pid, log $LOG_FILE)"
        return 0
    fi
    say "not running"
    return 1
}

# apt_install PACKAGE: install one of Debian's packages (RabbitMQ and NATS come from Debian).
apt_install() {
    say "installing Debian's $1…"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null ||
        die "could not install $1 (try: apt-get update)"
}

# already_running TIMEOUT WHERE: true (once it is ready) if our server runs already.
already_running() {
    local pid
    pid=$(running_pid) || return 1
    say "already running (pid $pid) on $2"
    wait_ready "$1" probe
}

# main TIMEOUT COMMAND [ARGS…]: the scripts' commands, start [ARGS] | stop | status | wait | help.
# stop also runs the caller's after_stop(), if it defines one.
main() {
    local timeout=$1 cmd=${2:-}
    shift $(($# < 2 ? $# : 2))
    case "$cmd" in
    start)
        take_lock
        start "$@"
        ;;
    stop)
        take_lock
        stop_server
        if declare -F after_stop >/dev/null; then after_stop; fi
        ;;
    status) status_server ;;
    wait)
        pick_python
        running_pid >/dev/null || die "not running; start it with: $0 start"
        wait_ready "$timeout" probe
        ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}
