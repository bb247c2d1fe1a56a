#!/usr/bin/env bash
# The project's own PostgreSQL 15 cluster (with TimescaleDB) on 127.0.0.1:$PG_PORT.
#   postgres.sh install|start|stop|status
# A throwaway cluster (e.g. for a test) can run beside the default one; the postgres user must
# be able to traverse the state folder's parents (so not under a private home):
#   TELEMETRY_STATE_DIR=/var/tmp/pg2 PG_PORT=55999 postgres.sh start
#   TELEMETRY_STATE_DIR=/var/tmp/pg2 PG_PORT=55999 PG_STOP_MODE=immediate postgres.sh stop
# It never uses pg_ctlcluster or the Debian "main" cluster: everything goes
# through this cluster's own data directory and port.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_BIN=/usr/lib/postgresql/15/bin
PG_EXT_DIR=/usr/share/postgresql/15/extension
PG_LIB_DIR=/usr/lib/postgresql/15/lib
BUILD_DEPS=(postgresql-server-dev-15 cmake libssl-dev gcc make dpkg-dev)
# Debian 12 has no TimescaleDB; Debian 13's *source* package builds here. Only a
# deb-src entry: installing Debian 13 binaries would pull in a new libc.
TRIXIE_SOURCES=/etc/apt/sources.list.d/health-upload-telemetry-trixie-src.sources
TS_SRC_DIR="$CACHE_DIR/timescaledb-src"
PG_START_TIMEOUT="${PG_START_TIMEOUT:-60}"
# How `stop` stops: fast (default) rolls back open transactions and checkpoints; immediate
# stops like a crash (open transactions are lost, recovery runs at the next start), which is
# what the fault tests use on a throwaway cluster of their own.
PG_STOP_MODE="${PG_STOP_MODE:-fast}"
[[ $PG_STOP_MODE == fast || $PG_STOP_MODE == immediate ]] ||
    { echo "ERROR: PG_STOP_MODE must be fast or immediate, got '$PG_STOP_MODE'" >&2; exit 2; }
WHERE="$BIND_HOST:$PG_PORT"

# PostgreSQL refuses to run as root, so as root the server runs as the
# `postgres` system user and its directory must be owned by it.
if ((EUID == 0)); then PG_USER=postgres; else PG_USER=$(id -un); fi
as_pg() {
    # cd /: the caller's cwd (e.g. /root) may be unreadable for $PG_USER.
    if ((EUID == 0)); then (cd / && runuser -u "$PG_USER" -- "$@"); else (cd / && "$@"); fi
}

# Where the cluster lives. Normally $STATE_DIR/postgres. The postgres user must
# be able to traverse every directory above it; CI or a developer may clone the
# repo under a private directory such as /root (mode 700). We do not loosen
# permissions of directories we don't own; instead we fall back to a directory
# in the postgres user's home, one per state dir, and leave a symlink at
# $STATE_DIR/postgres so logs are still found there. (Deleting the state dir
# then removes only the link; the fallback dir is named in `status`.)
pg_root_fallback() {
    echo "/var/lib/postgresql/health-upload-telemetry-$(cksum <<<"$STATE_DIR" | cut -d' ' -f1)"
}
# set_paths: PG_ROOT (cluster dir: data/, log, socket dir) and what hangs off it.
set_paths() {
    if [[ -L $STATE_DIR/postgres ]]; then
        PG_ROOT=$(readlink -f "$STATE_DIR/postgres")
    else
        PG_ROOT="$STATE_DIR/postgres"
    fi
    PGDATA="$PG_ROOT/data"
    PG_LOG="$PG_ROOT/postgresql.log"
    # Unix socket for admin access (peer auth as the postgres user). Socket
    # paths are limited to 107 bytes: a deeply nested checkout uses /tmp.
    PG_SOCK="$PG_ROOT/sock"
    if ((${#PG_SOCK} > 90)); then PG_SOCK=/tmp; fi
}
set_paths

timescaledb_installed() {
    [[ -f $PG_EXT_DIR/timescaledb.control ]] && compgen -G "$PG_LIB_DIR/timescaledb*.so" >/dev/null
}

add_trixie_sources() {
    [[ -f $TRIXIE_SOURCES ]] && return 0
    cat >"$TRIXIE_SOURCES" <<'EOF'
# Added by health-upload-telemetry deploy/local/postgres.sh: Debian 13 SOURCE
# packages only (TimescaleDB is built from source). Never add binaries here.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

apt_install_missing() {
    local missing=() p
    for p in "$@"; do
        [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    ((EUID == 0)) || die "missing packages ${missing[*]}: run as root or apt-get install them"
    # A fresh machine has no (or stale) package lists: update once first.
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    note "installed ${missing[*]}"
}

do_deps() {
    [[ -x $PG_BIN/postgres ]] || die "PostgreSQL 15 server not found in $PG_BIN (apt-get install postgresql-15)"
    # Add the source entry now, so the one `apt-get update` below covers it.
    if ! timescaledb_installed && ((EUID == 0)); then add_trixie_sources; fi
    apt_install_missing "${BUILD_DEPS[@]}"
}

do_timescaledb() {
    if timescaledb_installed; then
        note "installed: $(grep -oP "default_version = '\K[^']+" "$PG_EXT_DIR/timescaledb.control")"
        return 0
    fi
    ((EUID == 0)) || die "building TimescaleDB needs root (apt-get source, make install)"
    add_trixie_sources
    # (apt-cache exits 0 even when it knows no such source package)
    [[ -n $(apt-cache showsrc timescaledb 2>/dev/null) ]] || apt-get update
    rm -rf "$TS_SRC_DIR"
    mkdir -p "$TS_SRC_DIR"
    (cd "$TS_SRC_DIR" && apt-get source --download-only timescaledb)
    local dsc
    dsc=$(find "$TS_SRC_DIR" -maxdepth 1 -name 'timescaledb_*.dsc' | head -n 1)
    [[ -n $dsc ]] || die "apt-get source did not deliver a timescaledb .dsc"
    dpkg-source --no-check -x "$dsc" "$TS_SRC_DIR/src"
    # Apache-only edition (the Debian source has no tsl/ directory); no tests.
    (
        cd "$TS_SRC_DIR/src"
        ./bootstrap -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DAPACHE_ONLY=ON \
            -DWARNINGS_AS_ERRORS=OFF -DLINTER=OFF -DCMAKE_BUILD_TYPE=Release \
            -DPG_CONFIG="$PG_BIN/pg_config"
        cd build
        make -j"$(nproc)"
        make install
    )
    timescaledb_installed || die "make install finished but timescaledb is not in $PG_EXT_DIR"
    note "built and installed $(basename "$dsc" .dsc) for PostgreSQL 15"
}

# Decide (once) where the cluster lives, see pg_root_fallback above.
choose_pg_root() {
    [[ -L $STATE_DIR/postgres || -d $STATE_DIR/postgres ]] && return 0
    mkdir -p "$STATE_DIR"
    if ((EUID != 0)); then return 0; fi
    # The state dir is ours: let others traverse (not list) it.
    as_pg test -x "$STATE_DIR" || chmod o+x "$STATE_DIR"
    if ! as_pg test -x "$STATE_DIR"; then
        local fb
        fb=$(pg_root_fallback)
        install -d -o "$PG_USER" -m 700 "$fb"
        ln -s "$fb" "$STATE_DIR/postgres"
        note "user $PG_USER cannot reach $STATE_DIR (a parent directory is private): cluster lives in $fb (symlinked from $STATE_DIR/postgres)"
    fi
}

do_init() {
    choose_pg_root
    set_paths
    if [[ -f $PGDATA/PG_VERSION ]]; then
        note "exists: $PGDATA"
        return 0
    fi
    install -d -o "$PG_USER" -m 700 "$PG_ROOT"
    install -d -o "$PG_USER" -m 700 "$PG_ROOT/sock"
    as_pg test -w "$PG_ROOT" || die "user $PG_USER cannot write $PG_ROOT"
    rm -rf "$PGDATA" # a half-done initdb
    as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=scram-sha-256 --no-instructions
    echo "include_if_exists = 'telemetry.conf'" >>"$PGDATA/postgresql.conf"
    note "created cluster in $PGDATA"
}

# Our settings, rewritten before each start so edits here take effect.
# Sized for a 2-core, 24 GiB development box that runs other things too.
write_config() {
    cat >"$PGDATA/telemetry.conf" <<EOF
# Generated by deploy/local/postgres.sh before each start; edit the script.
listen_addresses = '$BIND_HOST'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
# One scheduler per database with the extension (tests clone many).
timescaledb.max_background_workers = 16
max_worker_processes = 24
max_parallel_workers = 2
max_parallel_workers_per_gather = 1
max_parallel_maintenance_workers = 1
max_connections = 200
# Hypertables lock every chunk they touch.
max_locks_per_transaction = 256
shared_buffers = 2GB
effective_cache_size = 8GB
work_mem = 16MB
maintenance_work_mem = 512MB
wal_buffers = 16MB
min_wal_size = 512MB
max_wal_size = 4GB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
random_page_cost = 1.1
effective_io_concurrency = 200
# Short OLTP-style queries: JIT compilation costs more than it saves.
jit = off
# fsync, full_page_writes and synchronous_commit stay at their safe defaults.
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 1000
log_lock_waits = on
EOF
    chown "$PG_USER" "$PGDATA/telemetry.conf"
}

pg_running() { as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

do_start() {
    if pg_running; then
        # Same cluster but another port asked for: don't mistake it for ours.
        grep -qx "port = $PG_PORT" "$PGDATA/telemetry.conf" ||
            die "the cluster in $PGDATA runs with another port ($(grep '^port = ' "$PGDATA/telemetry.conf")); stop it first"
        note "already running: pid $(head -n 1 "$PGDATA/postmaster.pid") on $WHERE"
        return 0
    fi
    require_free_port "$PG_PORT" postgres
    write_config
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PG_LOG" -w -t "$PG_START_TIMEOUT" start; then
        log_tail "$PG_LOG" 30
        die "postgres did not start on $WHERE; full log: $PG_LOG"
    fi
    note "running: pid $(head -n 1 "$PGDATA/postmaster.pid") on $WHERE, log $PG_LOG"
}

# Idempotent: role, database and extension. The extension goes into template1
# first, so every database created later (telemetry, the tests' clones) has it.
do_bootstrap() {
    as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -d postgres <<'SQL'
\connect template1
CREATE EXTENSION IF NOT EXISTS timescaledb;
\connect postgres
SELECT format('CREATE ROLE telemetry LOGIN CREATEDB PASSWORD %L', 'telemetry')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'telemetry') \gexec
ALTER ROLE telemetry LOGIN CREATEDB PASSWORD 'telemetry';
SELECT 'CREATE DATABASE telemetry OWNER telemetry'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'telemetry') \gexec
-- The dashboards' read-only role (migration 0003 grants it SELECT on the tables). Created
-- here, as superuser, because the services' role may not create roles. No password and
-- NOLOGIN: an operator who connects Grafana sets one (docs/monitoring.md); re-running
-- this never resets it.
SELECT 'CREATE ROLE grafana_reader NOLOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana_reader') \gexec
-- So the monitoring tests can read exactly as the dashboards do (SET ROLE grafana_reader);
-- it gives telemetry nothing it does not have already.
GRANT grafana_reader TO telemetry;
\connect telemetry
CREATE EXTENSION IF NOT EXISTS timescaledb;
SQL
    # Check what the services will do: TCP + password, as telemetry.
    local ext
    ext=$("$PG_BIN/psql" -X -qAt "$DATABASE_URL" \
        -c "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    [[ -n $ext ]] || die "timescaledb extension missing in database telemetry"
    note "$DATABASE_URL (timescaledb $ext)"
}

do_stop() {
    if [[ ! -f $PGDATA/PG_VERSION ]]; then
        note "no cluster in $PGDATA"
        return 0
    fi
    if ! pg_running; then
        note "not running"
        return 0
    fi
    # fast = roll back open transactions, checkpoint, exit; immediate if stuck.
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m "$PG_STOP_MODE" -w -t 60 stop; then
        as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 30 stop
    fi
    note "stopped ($PG_STOP_MODE)"
}

do_status() {
    local pid
    if [[ ! -f $PGDATA/PG_VERSION ]] || ! pg_running; then
        status_line postgres - "$WHERE" stopped "$PG_LOG"
        return 3
    fi
    pid=$(head -n 1 "$PGDATA/postmaster.pid")
    if "$PG_BIN/pg_isready" -q -h "$BIND_HOST" -p "$PG_PORT"; then
        status_line postgres "$pid" "$WHERE" answers "$PG_LOG"
    else
        status_line postgres "$pid" "$WHERE" NOT-ANSWERING "$PG_LOG"
        return 3
    fi
}

do_install_all() {
    step "postgres: install build dependencies (apt)" do_deps
    step "timescaledb: build from the Debian 13 source package" do_timescaledb
}

case "${1:-}" in
install) do_install_all ;;
start)
    do_install_all
    step "postgres: create cluster" do_init
    set_paths # the cluster may have moved to the fallback dir
    step "postgres: start on $WHERE" do_start
    step "postgres: role, database and timescaledb extension" do_bootstrap
    ;;
stop) step "postgres: stop $WHERE" do_stop ;;
status) do_status ;;
*)
    echo "usage: $0 install|start|stop|status" >&2
    exit 2
    ;;
esac
