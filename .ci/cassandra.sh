#!/usr/bin/env bash
# Runs a single-node Apache Cassandra for CI from Maven Central jars (no Docker, no tarball).
# Guardyn's CQL adapter targets ScyllaDB in production; Cassandra speaks the same CQL protocol.
#
#   .ci/cassandra.sh install   fetch cassandra-all and its runtime jars into the cache (idempotent)
#   .ci/cassandra.sh start     start a node on 127.0.0.1:$CQL_PORT and wait until CQL answers
#   .ci/cassandra.sh status    say whether CQL answers and which node we started
#   .ci/cassandra.sh smoke     create a SimpleStrategy keyspace and run a lightweight transaction
#   .ci/cassandra.sh stop      stop the node we started and remove its data dir
#
# Environment (all optional):
#   GUARDYN_CACHE            cache root, outside the clone   (default: $HOME/.cache/guardyn)
#   CQL_PORT                 native transport port           (default: 9042)
#   CASSANDRA_STORAGE_PORT   internode port on loopback      (default: 7000)
#   CASSANDRA_HEAP           max heap, e.g. 512m or 1g       (default: 512m)
#   CASSANDRA_WAIT_SECONDS   how long start waits for CQL    (default: 180)
#   CASSANDRA_JVM_OPTS       extra JVM flags, space-separated, appended last (default: none)
#   JAVA_HOME                JDK 17 to use                   (default: java on PATH)
#
# Works when called, or when sourced (`source .ci/cassandra.sh start`, or bare to get the
# cassandra_* functions); sourcing also turns on `set -euo pipefail` in the calling shell.

set -euo pipefail

CASSANDRA_VERSION="5.0.9"
# maven-dependency-plugin pinned so the fetch does not depend on Maven's built-in default.
CASSANDRA_DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

CASSANDRA_CI_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CASSANDRA_REPO_DIR="$(cd "$CASSANDRA_CI_DIR/.." && pwd)"
CASSANDRA_CACHE_ROOT="${GUARDYN_CACHE:-${HOME:?HOME is not set}/.cache/guardyn}"
CASSANDRA_HOME_DIR="$CASSANDRA_CACHE_ROOT/cassandra-$CASSANDRA_VERSION"
CASSANDRA_LIB_DIR="$CASSANDRA_HOME_DIR/lib"
CASSANDRA_M2_DIR="$CASSANDRA_CACHE_ROOT/m2"
CASSANDRA_MARKER="$CASSANDRA_LIB_DIR/.installed"
CASSANDRA_HOST="127.0.0.1"
CASSANDRA_CQL_PORT="${CQL_PORT:-9042}"
CASSANDRA_STORAGE_PORT="${CASSANDRA_STORAGE_PORT:-7000}"
CASSANDRA_HEAP="${CASSANDRA_HEAP:-512m}"
CASSANDRA_WAIT_SECONDS="${CASSANDRA_WAIT_SECONDS:-180}"
# One state dir per CQL port, so `stop` finds the node that `start` made for that port.
CASSANDRA_RUN_DIR="$CASSANDRA_HOME_DIR/run-$CASSANDRA_CQL_PORT"
# Deno flags for the helper scripts: no lockfile writes into the clone, only what the driver needs.
CASSANDRA_DENO_FLAGS=(--quiet --no-lock --config "$CASSANDRA_REPO_DIR/deno.json"
  --allow-net --allow-env --allow-read --allow-sys)

cassandra_log() { printf 'cassandra: %s\n' "$*" >&2; }
cassandra_die() {
  printf 'cassandra: error: %s\n' "$*" >&2
  return 1
}

# True when $1 is a whole number in $2..$3.
cassandra_in_range() {
  [[ "$1" =~ ^[0-9]{1,5}$ ]] && ((10#$1 >= $2 && 10#$1 <= $3))
}

cassandra_validate_env() {
  if ! cassandra_in_range "$CASSANDRA_CQL_PORT" 1024 65535; then
    cassandra_die "CQL_PORT must be a port in 1024..65535, got '$CASSANDRA_CQL_PORT'"
    return 1
  fi
  if ! cassandra_in_range "$CASSANDRA_STORAGE_PORT" 1024 65535; then
    cassandra_die "CASSANDRA_STORAGE_PORT must be a port in 1024..65535, got '$CASSANDRA_STORAGE_PORT'"
    return 1
  fi
  if [[ "$CASSANDRA_CQL_PORT" == "$CASSANDRA_STORAGE_PORT" ]]; then
    cassandra_die "CQL_PORT and CASSANDRA_STORAGE_PORT must differ"
    return 1
  fi
  if ! [[ "$CASSANDRA_HEAP" =~ ^[0-9]{2,5}[mM]$|^[0-9]{1,2}[gG]$ ]]; then
    cassandra_die "CASSANDRA_HEAP must look like 512m or 1g, got '$CASSANDRA_HEAP'"
    return 1
  fi
  if ! cassandra_in_range "$CASSANDRA_WAIT_SECONDS" 5 1800; then
    cassandra_die "CASSANDRA_WAIT_SECONDS must be 5..1800, got '$CASSANDRA_WAIT_SECONDS'"
    return 1
  fi
}

cassandra_require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 ||
      cassandra_die "'$tool' is not on PATH${CASSANDRA_APT_HINT[$tool]:+ (Debian: apt-get install ${CASSANDRA_APT_HINT[$tool]})}" ||
      return 1
  done
}
declare -A CASSANDRA_APT_HINT=([mvn]=maven [java]=openjdk-17-jre-headless [flock]=util-linux
  [setsid]=util-linux [ps]=procps [timeout]=coreutils)

cassandra_java() {
  if [[ -n "${JAVA_HOME:-}" ]]; then
    [[ -x "$JAVA_HOME/bin/java" ]] || cassandra_die "JAVA_HOME=$JAVA_HOME has no bin/java" || return 1
    printf '%s\n' "$JAVA_HOME/bin/java"
  else
    cassandra_require java || return 1
    command -v java
  fi
}

# Cassandra 5.0 runs on JDK 11 or 17; the flags below are the JDK 17 set, so insist on 17.
cassandra_check_java() {
  local java="$1" spec
  spec="$("$java" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = //p')"
  [[ "$spec" == "17" ]] ||
    cassandra_die "Cassandra $CASSANDRA_VERSION needs JDK 17 here, but $java is Java '${spec:-unknown}'; set JAVA_HOME"
}

cassandra_install() {
  cassandra_require mvn flock || return 1
  if [[ -f "$CASSANDRA_MARKER" ]]; then
    cassandra_log "cassandra-all $CASSANDRA_VERSION already in $CASSANDRA_LIB_DIR"
    return 0
  fi
  mkdir -p "$CASSANDRA_HOME_DIR" "$CASSANDRA_M2_DIR" || return 1
  (
    # Two CI jobs installing at once must not interleave: the second waits and then finds the marker.
    exec 9>"$CASSANDRA_HOME_DIR/.install.lock"
    flock -w 900 9 ||
      { cassandra_die "timed out waiting for another install (lock $CASSANDRA_HOME_DIR/.install.lock)" || exit 1; }
    if [[ -f "$CASSANDRA_MARKER" ]]; then
      cassandra_log "cassandra-all $CASSANDRA_VERSION was installed by a concurrent job"
      exit 0
    fi
    local work started jars
    work="$(mktemp -d "$CASSANDRA_HOME_DIR/.install.XXXXXX")" || exit 1
    trap 'rm -rf "$work"' EXIT
    started=$SECONDS
    cat >"$work/pom.xml" <<EOF || exit 1
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.guardyn.ci</groupId>
  <artifactId>cassandra-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$CASSANDRA_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
    cassandra_log "fetching cassandra-all $CASSANDRA_VERSION and runtime dependencies from Maven Central"
    if ! mvn -q -B -f "$work/pom.xml" "-Dmaven.repo.local=$CASSANDRA_M2_DIR" \
      "$CASSANDRA_DEP_PLUGIN:copy-dependencies" -DincludeScope=runtime \
      "-DoutputDirectory=$work/lib" >"$work/mvn.log" 2>&1; then
      tail -n 40 "$work/mvn.log" >&2
      cassandra_die "mvn could not fetch org.apache.cassandra:cassandra-all:$CASSANDRA_VERSION (log above)"
      exit 1
    fi
    [[ -f "$work/lib/cassandra-all-$CASSANDRA_VERSION.jar" ]] ||
      { cassandra_die "mvn finished but cassandra-all-$CASSANDRA_VERSION.jar is missing" || exit 1; }
    jars="$(find "$work/lib" -name '*.jar' | wc -l)"
    printf 'version=%s\njars=%s\n' "$CASSANDRA_VERSION" "$jars" >"$work/lib/.installed" || exit 1
    # Swap the finished dir in whole, so an interrupted install never looks complete.
    rm -rf "$CASSANDRA_LIB_DIR" && mv "$work/lib" "$CASSANDRA_LIB_DIR" || exit 1
    cassandra_log "installed $jars jars into $CASSANDRA_LIB_DIR in $((SECONDS - started)) s"
  )
}

# True when something accepts TCP connections on the port (says nothing about CQL).
cassandra_port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$CASSANDRA_HOST/$1" 2>/dev/null
}

# Runs the CQL wait script; prints the release version on success.
cassandra_wait_cql() {
  cassandra_require deno || return 1
  deno run "${CASSANDRA_DENO_FLAGS[@]}" "$CASSANDRA_CI_DIR/cassandra/wait-cql.ts" \
    --host "$CASSANDRA_HOST" --port "$CASSANDRA_CQL_PORT" --timeout "$1"
}

cassandra_our_pid() {
  local pid
  [[ -f "$CASSANDRA_RUN_DIR/pid" ]] || return 1
  pid="$(<"$CASSANDRA_RUN_DIR/pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    grep -qa CassandraDaemon "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

cassandra_rss_mib() {
  local kib
  kib="$(ps -o rss= -p "$1" 2>/dev/null | tr -d ' ')"
  [[ -n "$kib" ]] && printf '%s\n' "$((kib / 1024))" || printf '?\n'
}

cassandra_write_config() {
  local dir="$1"
  cat >"$dir/cassandra.yaml" <<EOF
# Single throwaway CI node on loopback; generated by .ci/cassandra.sh.
cluster_name: guardyn-ci
num_tokens: 1
auto_bootstrap: false
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$CASSANDRA_HOST:$CASSANDRA_STORAGE_PORT"
listen_address: $CASSANDRA_HOST
rpc_address: $CASSANDRA_HOST
storage_port: $CASSANDRA_STORAGE_PORT
start_native_transport: true
native_transport_port: $CASSANDRA_CQL_PORT
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
data_file_directories:
  - $dir/data
commitlog_directory: $dir/commitlog
saved_caches_directory: $dir/saved_caches
hints_directory: $dir/hints
cdc_raw_directory: $dir/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
commitlog_segment_size: 8MiB
# Small caches: a test node holds little data and shares the machine.
file_cache_size: 32MiB
key_cache_size: 8MiB
concurrent_compactors: 1
# Test keyspaces come and go; snapshots on drop/truncate only waste disk and time.
auto_snapshot: false
snapshot_before_compaction: false
# One node: no replicas to store hints for or to rank by latency.
hinted_handoff_enabled: false
dynamic_snitch: false
EOF
  cat >"$dir/logback.xml" <<EOF
<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>$dir/system.log</file>
    <encoder>
      <pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="FILE" />
  </root>
</configuration>
EOF
}

cassandra_jvm_flags() {
  local dir="$1" jamm
  CASSANDRA_JVM=(
    "-Xms$CASSANDRA_HEAP" "-Xmx$CASSANDRA_HEAP" -Xss256k
    # Serial GC: one test node on a 2-core shared machine; fewer GC threads and less footprint.
    -XX:+UseSerialGC
    -XX:+HeapDumpOnOutOfMemoryError "-XX:HeapDumpPath=$dir"
    -XX:+CrashOnOutOfMemoryError
    -XX:-UsePerfData
    -Djava.net.preferIPv4Stack=true
    "-Dcassandra.config=file://$dir/cassandra.yaml"
    "-Dlogback.configurationFile=$dir/logback.xml"
    "-Dcassandra.logdir=$dir" "-Dcassandra.storagedir=$dir" "-Dcassandra.triggers_dir=$dir/triggers"
    # Startup speedups for one node that never joins anyone.
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.ring_delay_ms=100
    -Dcassandra.superuser_setup_delay_ms=0
    # From Cassandra's conf/jvm17-server.options (JPMS access and Netty settings).
    -Djdk.attach.allowAttachSelf=true
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED
    --add-exports java.base/java.lang.ref=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    -Dio.netty.tryReflectionSetAccessible=true
    -Dio.netty.allocator.useCacheForAllThreads=true
    -Dio.netty.allocator.maxOrder=11
  )
  # Cassandra measures object sizes with jamm; its launcher loads it as an agent (cassandra-env.sh).
  jamm="$(find "$CASSANDRA_LIB_DIR" -maxdepth 1 -name 'jamm-*.jar' | head -n 1)"
  if [[ -n "$jamm" ]]; then CASSANDRA_JVM+=("-javaagent:$jamm"); fi
  local extra
  read -r -a extra <<<"${CASSANDRA_JVM_OPTS:-}"
  CASSANDRA_JVM+=("${extra[@]}")
}

# Cassandra always calls mlockall() at startup, which as root pins every committed page (the whole
# heap) in RAM. A throwaway test node on a shared machine should not, so drop CAP_IPC_LOCK for the
# JVM: mlockall then fails against RLIMIT_MEMLOCK and Cassandra just logs a warning.
cassandra_unpinned_prefix() {
  CASSANDRA_PREFIX=()
  if command -v setpriv >/dev/null 2>&1 &&
    setpriv --bounding-set=-ipc_lock --inh-caps=-ipc_lock true 2>/dev/null; then
    CASSANDRA_PREFIX=(setpriv --bounding-set=-ipc_lock --inh-caps=-ipc_lock)
  fi
}

cassandra_print_log_tail() {
  local log="$1/system.log"
  [[ -s "$log" ]] || log="$1/stdout.log"
  cassandra_log "last lines of $log:"
  tail -n 40 "$log" >&2 2>/dev/null || true
}

cassandra_start() {
  local pid version dir java started waited
  cassandra_validate_env || return 1
  cassandra_require ps timeout setsid deno || return 1

  if pid="$(cassandra_our_pid)"; then
    cassandra_log "a node started by this script is running (pid $pid); waiting for CQL"
    version="$(cassandra_wait_cql "$CASSANDRA_WAIT_SECONDS")" ||
      cassandra_die "node pid $pid does not answer CQL; run '.ci/cassandra.sh stop' and start again" || return 1
    cassandra_log "reusing Cassandra $version on $CASSANDRA_HOST:$CASSANDRA_CQL_PORT"
    return 0
  fi
  if cassandra_port_open "$CASSANDRA_CQL_PORT"; then
    if version="$(cassandra_wait_cql 5)"; then
      cassandra_log "CQL already answers on $CASSANDRA_HOST:$CASSANDRA_CQL_PORT (release $version); reusing it"
      return 0
    fi
    cassandra_die "port $CASSANDRA_CQL_PORT is in use but does not answer CQL; free it or set CQL_PORT"
    return 1
  fi
  if cassandra_port_open "$CASSANDRA_STORAGE_PORT"; then
    cassandra_die "storage port $CASSANDRA_STORAGE_PORT is in use; set CASSANDRA_STORAGE_PORT"
    return 1
  fi

  cassandra_install || return 1
  java="$(cassandra_java)" || return 1
  cassandra_check_java "$java" || return 1

  mkdir -p "$CASSANDRA_RUN_DIR" || return 1
  # A node of ours that died without `stop` (crash, reboot) leaves its data dir behind.
  if [[ -f "$CASSANDRA_RUN_DIR/datadir" ]]; then
    cassandra_log "removing the data dir of a node that is no longer running"
    cassandra_remove_data_dir "$(<"$CASSANDRA_RUN_DIR/datadir")"
    rm -f "$CASSANDRA_RUN_DIR/pid" "$CASSANDRA_RUN_DIR/datadir" "$CASSANDRA_RUN_DIR/version"
  fi
  dir="$(mktemp -d "${TMPDIR:-/tmp}/guardyn-cassandra.XXXXXX")" || return 1
  mkdir -p "$dir"/{data,commitlog,saved_caches,hints,cdc_raw,triggers} || return 1
  cassandra_write_config "$dir" || return 1
  cassandra_jvm_flags "$dir"
  cassandra_unpinned_prefix

  started=$SECONDS
  printf '%s\n' "$dir" >"$CASSANDRA_RUN_DIR/datadir"
  rm -f "$CASSANDRA_RUN_DIR/pid"
  # setsid: the node outlives the shell that started it (CI steps, interactive shells). setsid may
  # fork, so the JVM's own shell writes the pid file just before it execs into java.
  # shellcheck disable=SC2016 # $$ and $1 belong to the inner shell
  # Every fd is redirected, so no pipe of the caller (CI log capture, $(...)) is held open.
  (cd "$dir" && exec setsid bash -c 'printf "%s\n" "$$" >"$1" && shift && exec "$@"' cassandra \
    "$CASSANDRA_RUN_DIR/pid" "${CASSANDRA_PREFIX[@]}" "$java" "${CASSANDRA_JVM[@]}" \
    -cp "$CASSANDRA_LIB_DIR/*" org.apache.cassandra.service.CassandraDaemon) \
    </dev/null >"$dir/stdout.log" 2>&1 9>&- &
  for ((waited = 0; waited < 50; waited++)); do
    [[ -s "$CASSANDRA_RUN_DIR/pid" ]] && break
    sleep 0.1
  done
  pid="$(cat "$CASSANDRA_RUN_DIR/pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || cassandra_die "the JVM did not start (see $dir/stdout.log)" || return 1
  cassandra_log "started CassandraDaemon pid $pid, heap $CASSANDRA_HEAP, data and logs in $dir"

  # Wait for CQL, but give up early if the JVM dies instead of sitting out the whole timeout.
  cassandra_wait_cql "$CASSANDRA_WAIT_SECONDS" >"$CASSANDRA_RUN_DIR/version" &
  local waiter=$!
  while kill -0 "$waiter" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      kill "$waiter" 2>/dev/null || true
      wait "$waiter" 2>/dev/null || true
      cassandra_print_log_tail "$dir"
      cassandra_discard "$dir" "exited during startup"
      cassandra_die "Cassandra exited during startup (log above)"
      return 1
    fi
    sleep 1
  done
  if ! wait "$waiter"; then
    cassandra_print_log_tail "$dir"
    cp "$dir/system.log" "$CASSANDRA_RUN_DIR/last-failed-system.log" 2>/dev/null || true
    cassandra_stop
    cassandra_die "CQL did not answer on $CASSANDRA_HOST:$CASSANDRA_CQL_PORT within $CASSANDRA_WAIT_SECONDS s (log above)"
    return 1
  fi
  version="$(<"$CASSANDRA_RUN_DIR/version")"
  cassandra_log "Cassandra $version answers CQL on $CASSANDRA_HOST:$CASSANDRA_CQL_PORT after $((SECONDS - started)) s; JVM RSS $(cassandra_rss_mib "$pid") MiB"
}

# Keeps the log of a failed start next to the run state, then removes the data dir.
cassandra_discard() {
  local dir="$1" why="$2"
  if [[ -f "$dir/system.log" ]]; then cp "$dir/system.log" "$CASSANDRA_RUN_DIR/last-failed-system.log"; fi
  cassandra_log "$why; kept its log at $CASSANDRA_RUN_DIR/last-failed-system.log"
  cassandra_remove_data_dir "$dir"
  rm -f "$CASSANDRA_RUN_DIR/pid" "$CASSANDRA_RUN_DIR/datadir" "$CASSANDRA_RUN_DIR/version"
}

# Removes only a dir this script made (its name and generated yaml), never an arbitrary path.
cassandra_remove_data_dir() {
  local dir="$1"
  [[ -n "$dir" && -d "$dir" ]] || return 0
  if [[ "$(basename "$dir")" == guardyn-cassandra.* && -f "$dir/cassandra.yaml" ]]; then
    rm -rf "$dir"
  else
    cassandra_log "not removing $dir: it does not look like a dir made by this script"
  fi
}

cassandra_stop() {
  local pid dir waited
  cassandra_validate_env || return 1
  dir="$(cat "$CASSANDRA_RUN_DIR/datadir" 2>/dev/null || true)"
  if pid="$(cassandra_our_pid)"; then
    kill -TERM "$pid"
    for ((waited = 0; waited < 60; waited++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      cassandra_log "pid $pid ignored SIGTERM for 30 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    cassandra_log "stopped Cassandra pid $pid"
  else
    cassandra_log "no Cassandra started by this script is running for port $CASSANDRA_CQL_PORT"
  fi
  cassandra_remove_data_dir "$dir"
  rm -f "$CASSANDRA_RUN_DIR/pid" "$CASSANDRA_RUN_DIR/datadir" "$CASSANDRA_RUN_DIR/version"
}

cassandra_status() {
  local pid version
  cassandra_validate_env || return 1
  if pid="$(cassandra_our_pid)"; then
    cassandra_log "our node: pid $pid, RSS $(cassandra_rss_mib "$pid") MiB, data in $(<"$CASSANDRA_RUN_DIR/datadir")"
  fi
  if version="$(cassandra_wait_cql 5 2>/dev/null)"; then
    cassandra_log "CQL answers on $CASSANDRA_HOST:$CASSANDRA_CQL_PORT (release $version)"
  else
    cassandra_die "nothing answers CQL on $CASSANDRA_HOST:$CASSANDRA_CQL_PORT"
  fi
}

cassandra_smoke() {
  cassandra_validate_env || return 1
  cassandra_require deno || return 1
  deno run "${CASSANDRA_DENO_FLAGS[@]}" "$CASSANDRA_CI_DIR/cassandra/lwt-check.ts" \
    --host "$CASSANDRA_HOST" --port "$CASSANDRA_CQL_PORT"
}

cassandra_main() {
  case "${1:-}" in
  install) cassandra_install ;;
  start) cassandra_start ;;
  stop) cassandra_stop ;;
  status) cassandra_status ;;
  smoke) cassandra_smoke ;;
  *)
    printf 'usage: .ci/cassandra.sh install|start|status|smoke|stop\n' >&2
    return 2
    ;;
  esac
}

# Called: run the subcommand. Sourced: define the functions, and run a subcommand only when one is
# named (`source .ci/cassandra.sh start`); a bare source sees the caller's own arguments, so those
# are left alone unless they are exactly a subcommand.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  cassandra_main "$@"
elif [[ "${1:-}" =~ ^(install|start|status|smoke|stop)$ ]]; then
  cassandra_main "$1"
fi
