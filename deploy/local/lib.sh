# shellcheck shell=bash disable=SC2034  # the variables are used by the sourcing scripts
# Shared helpers for the local stack scripts. Source it, don't run it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Every path is derived from this file's location, never from the cwd, so the
# scripts work from anywhere and in a clone at any path.

LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$LIB_DIR/../.." && pwd)"

# Data dirs, logs and pid files (git-ignored). Downloads live outside the repo
# so that deleting the state (or a fresh clone) does not re-download.
STATE_DIR="${TELEMETRY_STATE_DIR:-$REPO/.state}"
CACHE_DIR="${TELEMETRY_CACHE_DIR:-$HOME/.cache/health-upload-telemetry}"
LOG_DIR="$STATE_DIR/logs"
RUN_DIR="$STATE_DIR/run"

# Everything listens on loopback only.
BIND_HOST=127.0.0.1
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
PG_PORT="${PG_PORT:-55432}"
COLLECTOR_PORT="${COLLECTOR_PORT:-8080}"
AGGREGATOR_PORT="${AGGREGATOR_PORT:-8081}"
# The aggregator's metrics have a listener of their own (they show every institution's figures).
AGGREGATOR_METRICS_PORT="${AGGREGATOR_METRICS_PORT:-9181}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
ALERTMANAGER_PORT="${ALERTMANAGER_PORT:-9093}"
for _p in KAFKA_PORT KAFKA_CONTROLLER_PORT PG_PORT COLLECTOR_PORT AGGREGATOR_PORT AGGREGATOR_METRICS_PORT PROMETHEUS_PORT ALERTMANAGER_PORT; do
    [[ ${!_p} =~ ^[0-9]+$ ]] || { echo "ERROR: $_p must be a port number, got '${!_p}'" >&2; exit 2; }
done
unset _p

DATABASE_URL="postgresql://telemetry:telemetry@$BIND_HOST:$PG_PORT/telemetry"
VENV="$REPO/.venv"

if [[ -t 1 ]]; then C_OK=$'\e[32m' C_ERR=$'\e[31m' C_OFF=$'\e[0m'; else C_OK='' C_ERR='' C_OFF=''; fi

die() { echo "ERROR: $*" >&2; exit 1; }

# note MSG: a one-line result worth showing (e.g. "already running, pid 42").
# Inside a step it is shown under the step's status line; outside, printed.
note() {
    echo "$*"
    if [[ -n ${STEP_NOTES:-} ]]; then echo "$*" >>"$STEP_NOTES"; fi
    return 0
}

# step "description" cmd [args...]
# Runs cmd (a command or a function of the calling script) with its output in a
# log file of its own, prints one status line, and on failure names the step and
# shows the tail of its log. The command runs in a subshell with errexit on.
# Never call step inside if/while/&&/||/!: bash then ignores errexit in
# everything the command runs, so a failed command would not stop it. Use
#   set +e; step ...; rc=$?; set -e
# to carry on after a failure. step refuses to run in such a context.
step() {
    local desc=$1 slug log rc probe caller_flags=$- start=$SECONDS
    shift
    set +e
    # Probe: where errexit is ignored, this subshell gets past `false`.
    (
        set -e
        false
        exit 0
    )
    probe=$?
    if ((probe == 0)); then
        echo "BUG: step '$desc' called where errexit is ignored (if/&&/||/!)" >&2
        exit 70
    fi
    slug=$(tr -cs 'A-Za-z0-9' '-' <<<"${desc,,}")
    slug=${slug%-}
    mkdir -p "$LOG_DIR/steps"
    log="$LOG_DIR/steps/$slug.log"
    printf '==> %s ... ' "$desc"
    : >"$log.notes"
    (
        set -e
        export STEP_NOTES="$log.notes"
        "$@"
    ) >"$log" 2>&1 </dev/null
    rc=$?
    if [[ $caller_flags == *e* ]]; then set -e; fi
    if ((rc == 0)); then
        printf '%sok%s (%ss)\n' "$C_OK" "$C_OFF" "$((SECONDS - start))"
    else
        printf '%sFAILED%s (exit %s after %ss)\n' "$C_ERR" "$C_OFF" "$rc" "$((SECONDS - start))"
    fi
    sed 's/^/    /' "$log.notes"
    rm -f "$log.notes"
    if ((rc != 0)); then
        {
            echo "${C_ERR}ERROR: step failed: $desc${C_OFF}"
            echo "--- last 40 lines of $log ---"
            tail -n 40 "$log"
            echo "--- end of $log ---"
        } >&2
    fi
    return "$rc"
}

# pid_of PIDFILE MARKER: print the pid recorded in PIDFILE if that process is
# alive AND its command line contains MARKER. A stale pid file (crash, reboot,
# pid reused by an unrelated process) therefore reads as "not running".
pid_of() {
    local file=$1 marker=$2 pid cmdline
    [[ -r $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"$marker"* ]] || return 1
    echo "$pid"
}

# stop_pid PID NAME [TIMEOUT]: SIGTERM, wait up to TIMEOUT s, then SIGKILL.
stop_pid() {
    local pid=$1 name=$2 timeout=${3:-30} waited=0
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= timeout * 10)); then
            note "$name (pid $pid) ignored SIGTERM for ${timeout}s: sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            return 0
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    # shellcheck disable=SC2016  # $0/$1 are expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$BIND_HOST" "$1" 2>/dev/null
}

# port_owner PORT: describe who listens on PORT (for error messages).
port_owner() {
    ss -ltnpH "sport = :$1" 2>/dev/null || true
}

# require_free_port PORT WHAT: fail clearly when another process holds the port.
require_free_port() {
    if port_open "$1"; then
        die "$2: port $BIND_HOST:$1 is already in use by another process: $(port_owner "$1")"
    fi
}

# http_ok PORT [PATH]: GET http://127.0.0.1:PORT/PATH answers 200.
# Plain bash, so it works before the venv or curl exist.
http_ok() {
    # shellcheck disable=SC2016  # $0/$1/$2 are expanded by the inner bash
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "GET %s HTTP/1.0\r\nHost: %s:%s\r\n\r\n" "$2" "$0" "$1" >&3
        read -r _ code _ <&3
        cat <&3 >/dev/null # drain, so the server does not see a reset
        [[ $code == 200 ]]' "$BIND_HOST" "$1" "${2:-/healthz}" 2>/dev/null
}

# wait_for TIMEOUT CMD...: poll CMD every 0.5 s until it succeeds or TIMEOUT s pass.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# spawn PIDFILE LOGFILE CMD...: start CMD detached (own session, immune to the
# terminal's hangup), stdout+stderr appended to LOGFILE, pid in PIDFILE. The pid
# is written by the wrapper shell that then execs CMD, so it is CMD's own pid.
spawn() {
    local pidfile=$1 logfile=$2
    shift 2
    mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
    rm -f "$pidfile"
    # shellcheck disable=SC2016  # $0 is expanded by the inner bash
    setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$logfile" 2>&1 </dev/null &
    wait_for 5 test -s "$pidfile" || die "could not start $1 (no pid file)"
}

# log_tail FILE [N]: print the last N lines of FILE, for failure messages.
log_tail() {
    local n=${2:-30}
    if [[ -s $1 ]]; then
        echo "--- last $n lines of $1 ---"
        tail -n "$n" "$1"
        echo "---"
    else
        echo "($1 is empty or missing)"
    fi
}

# status_line NAME PID ADDRESS STATE LOG: one row of `status` output.
status_line() {
    printf '%-10s %-7s %-21s %-14s %s\n' "$@"
}

# resolve_maven_classpath HOME LIBS EXPECTED_JAR
# Copies the runtime dependencies of HOME/pom.xml (written by the caller) from Maven Central
# into LIBS; skipped when LIBS holds the jars of this exact pom (.complete has its hash). The
# jars go to a temporary dir first and are renamed, so an interrupted download never leaves a
# half-filled dir that looks complete. EXPECTED_JAR is a file name that must be among them.
resolve_maven_classpath() {
    local home=$1 libs=$2 expected=$3 hash
    command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
    hash=$(sha256sum "$home/pom.xml" | cut -d' ' -f1)
    if [[ -f $libs/.complete && $(<"$libs/.complete") == "$hash" ]]; then
        note "cached: $libs ($(find "$libs" -name '*.jar' | wc -l) jars)"
        return 0
    fi
    rm -rf "$libs.tmp"
    mvn -B -ntp -f "$home/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$libs.tmp"
    [[ -f $libs.tmp/$expected ]] || die "maven did not deliver $expected"
    echo "$hash" >"$libs.tmp/.complete"
    rm -rf "$libs"
    mv "$libs.tmp" "$libs"
    note "resolved $(find "$libs" -name '*.jar' | wc -l) jars into $libs"
}
# Kafka: one broker (the default) or, with TELEMETRY_KAFKA_BROKERS=3, a cluster of three
# brokers and one KRaft controller (deploy/local/kafka.sh says why). The cluster's brokers
# listen on KAFKA_PORT, +2 and +4 (19092, 19094, 19096), its controller on
# KAFKA_CONTROLLER_PORT; KAFKA_PORTS="p1 p2 p3" names the three broker ports instead.
# When TELEMETRY_KAFKA_BROKERS is unset (and KAFKA_STATE_DIR not given), a cluster that
# runs from this state dir counts as asked for, so status, stop, services.sh, demo and test
# find it without the variable being repeated.
kafka_cluster_runs() {
    local node dir=$STATE_DIR/kafka-cluster
    for node in controller broker-1 broker-2 broker-3; do
        pid_of "$dir/$node/kafka.pid" "kafka.Kafka $dir/$node/server.properties" >/dev/null && return 0
    done
    return 1
}
if [[ -n ${TELEMETRY_KAFKA_BROKERS:-} ]]; then
    KAFKA_BROKERS=$TELEMETRY_KAFKA_BROKERS
elif [[ -z ${KAFKA_STATE_DIR:-} ]] && kafka_cluster_runs; then
    KAFKA_BROKERS=3
else
    KAFKA_BROKERS=1
fi
if [[ $KAFKA_BROKERS == 1 ]]; then
    KAFKA_PORTS=$KAFKA_PORT
elif [[ $KAFKA_BROKERS == 3 ]]; then
    KAFKA_PORTS="${KAFKA_PORTS:-$KAFKA_PORT $((KAFKA_PORT + 2)) $((KAFKA_PORT + 4))}"
else
    echo "ERROR: TELEMETRY_KAFKA_BROKERS must be 1 or 3, got '$KAFKA_BROKERS'" >&2
    exit 2
fi
read -r -a KAFKA_PORT_LIST <<<"$KAFKA_PORTS"
((${#KAFKA_PORT_LIST[@]} == KAFKA_BROKERS)) ||
    { echo "ERROR: KAFKA_PORTS must name $KAFKA_BROKERS ports, got '$KAFKA_PORTS'" >&2; exit 2; }
for _p in "${KAFKA_PORT_LIST[@]}"; do
    [[ $_p =~ ^[0-9]+$ ]] || { echo "ERROR: KAFKA_PORTS must be port numbers, got '$KAFKA_PORTS'" >&2; exit 2; }
done
unset _p
KAFKA_BOOTSTRAP=$(printf "%s," "${KAFKA_PORT_LIST[@]/#/$BIND_HOST:}")
KAFKA_BOOTSTRAP=${KAFKA_BOOTSTRAP%,}
# What the services give their topics: every broker holds a copy, and an acknowledgement
# (acks=all) needs two of the three copies in sync.
if ((KAFKA_BROKERS == 1)); then
    KAFKA_REPLICATION_FACTOR=1 KAFKA_MIN_INSYNC_REPLICAS=1
else
    KAFKA_REPLICATION_FACTOR=3 KAFKA_MIN_INSYNC_REPLICAS=2
fi
