#!/usr/bin/env bash
# The project's Python services as background processes.
#   services.sh start|stop|status [collector|aggregator]
# Logs: $STATE_DIR/logs/<name>.log, pid files: $STATE_DIR/run/<name>.pid.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SERVICE_START_TIMEOUT="${SERVICE_START_TIMEOUT:-30}"
SERVICE_STOP_TIMEOUT="${SERVICE_STOP_TIMEOUT:-20}"
TOKEN_FILE="$STATE_DIR/admin-token"
PY="$VENV/bin/python"

svc_port() {
    case $1 in
    collector) echo "$COLLECTOR_PORT" ;;
    aggregator) echo "$AGGREGATOR_PORT" ;;
    esac
}
svc_pidfile() { echo "$RUN_DIR/$1.pid"; }
svc_log() { echo "$LOG_DIR/$1.log"; }
# What /proc/<pid>/cmdline of our service contains (the venv path makes it
# specific to this checkout).
svc_marker() { echo "$PY -m services.$1"; }

# Generated once, kept across restarts; readable by the owner only.
ensure_token() {
    if [[ ! -s $TOKEN_FILE ]]; then
        mkdir -p "$STATE_DIR"
        (
            umask 077
            "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$TOKEN_FILE.tmp"
        )
        mv "$TOKEN_FILE.tmp" "$TOKEN_FILE"
        note "generated admin token in $TOKEN_FILE"
    fi
    chmod 600 "$TOKEN_FILE"
}

# Healthy, or dead (then stop waiting; the caller tells which).
svc_ready() { http_ok "$2" /healthz || ! kill -0 "$1" 2>/dev/null; }

start_one() {
    local name=$1 port pidfile log pid
    port=$(svc_port "$name") pidfile=$(svc_pidfile "$name") log=$(svc_log "$name")
    if pid=$(pid_of "$pidfile" "$(svc_marker "$name")"); then
        # Running already (perhaps still starting up): only wait for health.
        if wait_for "$SERVICE_START_TIMEOUT" http_ok "$port" /healthz; then
            note "already running: pid $pid on $BIND_HOST:$port"
            return 0
        fi
        log_tail "$log"
        die "$name (pid $pid) runs but GET http://$BIND_HOST:$port/healthz does not answer 200; stop it with: $0 stop $name"
    fi
    rm -f "$pidfile" # stale
    [[ -x $PY ]] || die "$PY not found: run deploy/local/python.sh first"
    require_free_port "$port" "$name"
    ensure_token
    # Start from the repo root so `-m services.<name>` resolves even before
    # the editable install; keep at most one old log generation.
    cd "$REPO"
    if [[ -f $log ]] && (($(stat -c %s "$log") > 50 * 1024 * 1024)); then mv -f "$log" "$log.1"; fi
    echo "=== $(date -u +%FT%TZ) starting $name on $BIND_HOST:$port ===" >>"$log"
    spawn "$pidfile" "$log" env \
        PYTHONUNBUFFERED=1 \
        TELEMETRY_KAFKA_BOOTSTRAP="$KAFKA_BOOTSTRAP" \
        TELEMETRY_EVENTS_REPLICATION_FACTOR="$KAFKA_REPLICATION_FACTOR" \
        TELEMETRY_EVENTS_MIN_INSYNC_REPLICAS="$KAFKA_MIN_INSYNC_REPLICAS" \
        TELEMETRY_DATABASE_URL="$DATABASE_URL" \
        TELEMETRY_ADMIN_TOKEN="$(<"$TOKEN_FILE")" \
        TELEMETRY_COLLECTOR_PORT="$COLLECTOR_PORT" \
        TELEMETRY_AGGREGATOR_PORT="$AGGREGATOR_PORT" \
        TELEMETRY_AGGREGATOR_METRICS_PORT="$AGGREGATOR_METRICS_PORT" \
        TELEMETRY_SPOOL_DIR="$STATE_DIR/collector-spool" \
        "$PY" -m "services.$name"
    pid=$(<"$pidfile")
    if ! wait_for "$SERVICE_START_TIMEOUT" svc_ready "$pid" "$port"; then
        log_tail "$log"
        die "$name (pid $pid) did not answer 200 on GET http://$BIND_HOST:$port/healthz within ${SERVICE_START_TIMEOUT}s; left running for inspection, stop it with: $0 stop $name"
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$pidfile"
        log_tail "$log"
        die "$name exited during startup; full log: $log"
    fi
    note "running: pid $pid on http://$BIND_HOST:$port, log $log"
}

stop_one() {
    local name=$1 pidfile pid
    pidfile=$(svc_pidfile "$name")
    if ! pid=$(pid_of "$pidfile" "$(svc_marker "$name")"); then
        rm -f "$pidfile"
        note "not running"
        return 0
    fi
    stop_pid "$pid" "$name" "$SERVICE_STOP_TIMEOUT"
    rm -f "$pidfile"
    note "stopped pid $pid"
}

status_one() {
    local name=$1 port pid where
    port=$(svc_port "$name")
    where="$BIND_HOST:$port"
    if ! pid=$(pid_of "$(svc_pidfile "$name")" "$(svc_marker "$name")"); then
        status_line "$name" - "$where" stopped "$(svc_log "$name")"
        return 3
    fi
    if http_ok "$port" /healthz; then
        status_line "$name" "$pid" "$where" answers "$(svc_log "$name")"
    else
        status_line "$name" "$pid" "$where" NOT-ANSWERING "$(svc_log "$name")"
        return 3
    fi
}

action=${1:-}
case ${2:-all} in
all) names=(collector aggregator) ;;
collector | aggregator) names=("$2") ;;
*)
    echo "unknown service '$2' (collector|aggregator)" >&2
    exit 2
    ;;
esac

rc=0
case $action in
start) for n in "${names[@]}"; do step "$n: start on $BIND_HOST:$(svc_port "$n")" start_one "$n"; done ;;
stop)
    # Keep going on failure: stop as much as possible.
    for n in "${names[@]}"; do
        set +e
        step "$n: stop" stop_one "$n"
        ((rc |= $?))
        set -e
    done
    ;;
status) for n in "${names[@]}"; do status_one "$n" || rc=3; done ;;
*)
    echo "usage: $0 start|stop|status [collector|aggregator]" >&2
    exit 2
    ;;
esac
((rc == 0)) || exit "$rc"
