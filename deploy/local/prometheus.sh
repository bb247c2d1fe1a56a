#!/usr/bin/env bash
# Prometheus and Alertmanager for the local stack, from Debian 12's packages, run as
# the project's own processes on loopback (never Debian's services):
#   prometheus.sh install|start|stop|status
# install  apt packages prometheus (prometheus, promtool) and prometheus-alertmanager
#          (amtool), with Debian's own services kept from starting (see do_install).
# start    Prometheus on 127.0.0.1:$PROMETHEUS_PORT: config generated into
#          $STATE_DIR/prometheus/prometheus.yml, data in $STATE_DIR/prometheus/data,
#          rules from deploy/prometheus/rules/. Alertmanager on 127.0.0.1:$ALERTMANAGER_PORT:
#          config deploy/alertmanager/alertmanager.yml, data in $STATE_DIR/alertmanager.
#          On running instances, start checks the configuration and rules again and
#          reloads them, so `start` after editing a rule applies it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(prometheus prometheus-alertmanager)
PROM_BIN=/usr/bin/prometheus
PROMTOOL=/usr/bin/promtool
AM_BIN=/usr/bin/prometheus-alertmanager
AMTOOL=/usr/bin/amtool
POLICY_RC_D=/usr/sbin/policy-rc.d

RULES_DIR="$REPO/deploy/prometheus/rules"
AM_CONFIG="$REPO/deploy/alertmanager/alertmanager.yml"
PROM_DIR="$STATE_DIR/prometheus"
PROM_CONFIG="$PROM_DIR/prometheus.yml"
PROM_LOG="$PROM_DIR/prometheus.log"
PROM_PID="$RUN_DIR/prometheus.pid"
PROM_RETENTION="${PROMETHEUS_RETENTION:-15d}"
AM_DIR="$STATE_DIR/alertmanager"
AM_LOG="$AM_DIR/alertmanager.log"
AM_PID="$RUN_DIR/alertmanager.pid"
START_TIMEOUT="${PROMETHEUS_START_TIMEOUT:-30}"
STOP_TIMEOUT="${PROMETHEUS_STOP_TIMEOUT:-20}"
# What /proc/<pid>/cmdline of our processes contains (specific to this state dir, not to the
# checkout: a second worktree pointed at the same TELEMETRY_STATE_DIR shares the stack).
PROM_MARKER="$PROM_BIN --config.file=$PROM_CONFIG"
AM_MARKER="--storage.path=$AM_DIR"

installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

# Debian's packages start their own Prometheus (:9090) and Alertmanager (:9093, and
# :9094 for clustering), on all interfaces, from postinst: invoke-rc.d when /sbin/init
# exists, deb-systemd-invoke when systemd runs. Both ask /usr/sbin/policy-rc.d first.
# Containers usually ship one that refuses every start (exit 101); a VM or a developer's
# machine has none, so we put a temporary one in place for the apt run, and afterwards
# disable the units so that a reboot does not start them either. A policy-rc.d we did not
# write is left alone (it is the machine owner's); if it let the services start, they
# are stopped below.
do_install() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
    if ((${#missing[@]} == 0)); then
        note "installed: $("$PROMTOOL" --version 2>&1 | head -n 1), $("$AM_BIN" --version 2>&1 | head -n 1)"
        return 0
    fi
    ((EUID == 0)) || die "missing packages ${missing[*]}: run as root or apt-get install them"
    if [[ ! -e $POLICY_RC_D ]]; then
        printf '#!/bin/sh\n# Temporary, written by %s for one apt run: start no service.\nexit 101\n' \
            "$0" >"$POLICY_RC_D"
        chmod 755 "$POLICY_RC_D"
        trap 'rm -f "$POLICY_RC_D"' EXIT
        note "no $POLICY_RC_D: a temporary one keeps Debian's services from starting during the install"
    fi
    # A fresh machine has no (or stale) package lists: update once first.
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    disable_debian_services
    note "installed ${missing[*]}; Debian's own prometheus and prometheus-alertmanager services disabled"
}

disable_debian_services() {
    local unit pidfile
    for unit in prometheus prometheus-alertmanager; do
        if [[ -d /run/systemd/system ]]; then
            systemctl disable --now "$unit.service"
        else
            # For the next boot: sysvinit links, and (through systemctl's offline mode,
            # which update-rc.d calls when systemctl is installed) the systemd links
            # postinst created; a machine image may boot with systemd later.
            update-rc.d "$unit" disable
            if [[ -e /etc/systemd/system/multi-user.target.wants/$unit.service ]]; then
                deb-systemd-helper disable "$unit.service"
            fi
            pidfile="/run/prometheus/$unit.pid"
            if [[ -s $pidfile ]] && kill -0 "$(<"$pidfile")" 2>/dev/null; then
                "/etc/init.d/$unit" stop
                note "stopped Debian's $unit (a policy-rc.d let apt start it)"
            fi
        fi
    done
}

# http_post PORT PATH: POST with an empty body; succeeds on a 200 answer. Plain bash,
# like lib.sh's http_ok.
http_post() {
    # shellcheck disable=SC2016  # $0/$1/$2 are expanded by the inner bash
    timeout 30 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "POST %s HTTP/1.0\r\nHost: %s:%s\r\nContent-Length: 0\r\n\r\n" "$2" "$0" "$1" >&3
        read -r _ code _ <&3
        cat <&3 >/dev/null
        [[ $code == 200 ]]' "$BIND_HOST" "$1" "$2" 2>/dev/null
}

# (Re)written before each start and reload, so edits to this script take effect; then
# checked with promtool (which also parses every rule file it names).
write_prometheus_config() {
    mkdir -p "$PROM_DIR/data"
    cat >"$PROM_CONFIG" <<EOF
# Generated by deploy/local/prometheus.sh on each start; edit the script, not this.
global:
  scrape_interval: 15s
  evaluation_interval: 15s
  external_labels:
    environment: local

rule_files:
  - $RULES_DIR/*.yml

alerting:
  alertmanagers:
    - static_configs:
        - targets: ['$BIND_HOST:$ALERTMANAGER_PORT']

scrape_configs:
  - job_name: collector
    static_configs:
      - targets: ['$BIND_HOST:$COLLECTOR_PORT']
  - job_name: aggregator
    static_configs:
      - targets: ['$BIND_HOST:$AGGREGATOR_METRICS_PORT']
  - job_name: prometheus
    static_configs:
      - targets: ['$BIND_HOST:$PROMETHEUS_PORT']
  - job_name: alertmanager
    static_configs:
      - targets: ['$BIND_HOST:$ALERTMANAGER_PORT']
EOF
    "$PROMTOOL" check config "$PROM_CONFIG" || die "$PROM_CONFIG or a rule file in $RULES_DIR is invalid (see above)"
}

# Ready, or dead (then stop waiting; the caller tells which).
ready_or_dead() { http_ok "$2" /-/ready || ! kill -0 "$1" 2>/dev/null; }

# run_one NAME PIDFILE MARKER PORT LOG CMD...: start CMD unless ours already runs, in
# which case its configuration is reloaded.
run_one() {
    local name=$1 pidfile=$2 marker=$3 port=$4 log=$5 pid
    shift 5
    if pid=$(pid_of "$pidfile" "$marker"); then
        http_ok "$port" /-/ready ||
            die "$name (pid $pid) runs but http://$BIND_HOST:$port/-/ready does not answer 200 (another port?); stop it with: $0 stop"
        http_post "$port" /-/reload || die "$name (pid $pid) refused to reload its configuration; see $log"
        note "already running: pid $pid on http://$BIND_HOST:$port (configuration reloaded)"
        return 0
    fi
    rm -f "$pidfile" # stale
    require_free_port "$port" "$name"
    if [[ -f $log ]] && (($(stat -c %s "$log") > 50 * 1024 * 1024)); then mv -f "$log" "$log.1"; fi
    spawn "$pidfile" "$log" "$@"
    pid=$(<"$pidfile")
    if ! wait_for "$START_TIMEOUT" ready_or_dead "$pid" "$port"; then
        log_tail "$log"
        die "$name (pid $pid) not ready on http://$BIND_HOST:$port within ${START_TIMEOUT}s; left running for inspection, stop it with: $0 stop"
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$pidfile"
        log_tail "$log"
        die "$name exited during startup; full log: $log"
    fi
    note "running: pid $pid on http://$BIND_HOST:$port, log $log"
}

do_start_alertmanager() {
    [[ -x $AM_BIN ]] || die "$AM_BIN not found: run $0 install"
    "$AMTOOL" check-config "$AM_CONFIG" || die "$AM_CONFIG is invalid (see above)"
    mkdir -p "$AM_DIR"
    # --cluster.listen-address= (empty) turns off the HA gossip port (:9094 by default):
    # one instance, nothing listening beyond the web port.
    run_one alertmanager "$AM_PID" "$AM_MARKER" "$ALERTMANAGER_PORT" "$AM_LOG" \
        "$AM_BIN" --config.file="$AM_CONFIG" --storage.path="$AM_DIR" \
        --web.listen-address="$BIND_HOST:$ALERTMANAGER_PORT" --cluster.listen-address=
}

do_start_prometheus() {
    [[ -x $PROM_BIN ]] || die "$PROM_BIN not found: run $0 install"
    write_prometheus_config
    # --web.enable-lifecycle: POST /-/reload, which answers only once the reload is done
    # (a SIGHUP would return before, and tests read the rules right after start).
    run_one prometheus "$PROM_PID" "$PROM_MARKER" "$PROMETHEUS_PORT" "$PROM_LOG" \
        "$PROM_BIN" --config.file="$PROM_CONFIG" --storage.tsdb.path="$PROM_DIR/data" \
        --storage.tsdb.retention.time="$PROM_RETENTION" \
        --web.listen-address="$BIND_HOST:$PROMETHEUS_PORT" --web.enable-lifecycle
}

stop_one() {
    local name=$1 pidfile=$2 marker=$3 pid
    if ! pid=$(pid_of "$pidfile" "$marker"); then
        rm -f "$pidfile"
        note "not running"
        return 0
    fi
    stop_pid "$pid" "$name" "$STOP_TIMEOUT"
    rm -f "$pidfile"
    note "stopped pid $pid"
}

status_one() {
    local name=$1 pidfile=$2 marker=$3 port=$4 log=$5 pid where="$BIND_HOST:$4"
    if ! pid=$(pid_of "$pidfile" "$marker"); then
        status_line "$name" - "$where" stopped "$log"
        return 3
    fi
    if http_ok "$port" /-/ready; then
        status_line "$name" "$pid" "$where" answers "$log"
    else
        status_line "$name" "$pid" "$where" NOT-ANSWERING "$log"
        return 3
    fi
}

rc=0
case "${1:-}" in
install) step "prometheus: apt install ${PACKAGES[*]}" do_install ;;
start)
    step "prometheus: apt install ${PACKAGES[*]}" do_install
    step "alertmanager: start on $BIND_HOST:$ALERTMANAGER_PORT" do_start_alertmanager
    step "prometheus: start on $BIND_HOST:$PROMETHEUS_PORT" do_start_prometheus
    ;;
stop)
    # Keep going on failure: stop as much as possible.
    set +e
    step "prometheus: stop" stop_one prometheus "$PROM_PID" "$PROM_MARKER"
    ((rc |= $?))
    step "alertmanager: stop" stop_one alertmanager "$AM_PID" "$AM_MARKER"
    ((rc |= $?))
    set -e
    ;;
status)
    status_one prometheus "$PROM_PID" "$PROM_MARKER" "$PROMETHEUS_PORT" "$PROM_LOG" || rc=3
    status_one alertmanager "$AM_PID" "$AM_MARKER" "$ALERTMANAGER_PORT" "$AM_LOG" || rc=3
    ;;
*)
    echo "usage: $0 install|start|stop|status" >&2
    exit 2
    ;;
esac
((rc == 0)) || exit "$rc"
