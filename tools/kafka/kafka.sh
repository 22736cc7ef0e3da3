#!/usr/bin/env bash
# Run real Apache Kafka (KRaft, one node acting as broker and controller) and MirrorMaker 2
# from the jars that install.sh put in .cache/kafka/libs. No Docker, no ZooKeeper.
#
#   kafka.sh start  --dir D --port P --controller-port C [--advertised HOST:PORT] [--node-id N]
#                   [--cluster-id ID] [--heap 512m] [--partitions N] [--wait-s 90] [--owner-pid PID]
#   kafka.sh stop   --dir D [--wait-s 30]
#   kafka.sh status --dir D                 # exit 0 when running and ready, 3 when stopped
#   kafka.sh mm2-start --dir D --config mm2.properties [--heap 384m] [--owner-pid PID]
#   kafka.sh mm2-stop  --dir D [--wait-s 30]
#
# One directory is one cluster (or one MirrorMaker 2): config, data, logs and pid file all live
# in it, so several clusters (one per region) run side by side on distinct ports and dirs.
# `start` formats the directory the first time (kafka.tools.StorageTool), starts kafka.Kafka in
# the background, and returns once the broker logs that it started and its port accepts
# connections; a second `start` of a formatted dir keeps the data (a restart).
# --owner-pid ties the process to another one (a test run): when the owner is gone, however it
# ended (even SIGKILL), a watchdog stops the broker, so no JVM outlives its tests.
#
# Environment: KAFKA_LIBS (jar dir, default <repo>/.cache/kafka/libs), JAVA (java binary),
# KAFKA_JVM_OPTS (extra JVM flags).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
libs=${KAFKA_LIBS:-$root/.cache/kafka/libs}
java=${JAVA:-${JAVA_HOME:+$JAVA_HOME/bin/java}}
java=${java:-java}

die() { echo "kafka.sh: $*" >&2; exit 2; }

cmd=${1:-}
[ -n "$cmd" ] || die "usage: kafka.sh start|stop|status|mm2-start|mm2-stop --dir D [options]"
shift
dir='' port='' cport='' advertised='' node_id=1 cluster_id='' heap='' partitions=1 wait_s='' config='' owner=''
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --controller-port) cport=$2; shift 2 ;;
    --advertised) advertised=$2; shift 2 ;;
    --node-id) node_id=$2; shift 2 ;;
    --cluster-id) cluster_id=$2; shift 2 ;;
    --heap) heap=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --wait-s) wait_s=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --owner-pid) owner=$2; shift 2 ;;
    *) die "unknown option '$1'" ;;
  esac
done
[ -n "$dir" ] || die "--dir is required"
is_port() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }

require_jars() {
  if ! ls "$libs"/kafka_2.13-*.jar >/dev/null 2>&1; then
    echo "kafka.sh: no Kafka jars in $libs; run: bash tools/kafka/install.sh" >&2
    exit 4
  fi
  command -v "$java" >/dev/null || { echo "kafka.sh: '$java' not found; install Java 17+" >&2; exit 4; }
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A small heap and the C1 compiler only: the machines here have two cores shared by several
# JVMs, and C2 compilation of a broker that serves test traffic costs more CPU than it saves.
jvm_opts() {
  local xmx=$1 log4j=$2
  echo "-Xms64m -Xmx$xmx -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError -XX:-UsePerfData" \
    "-Djava.awt.headless=true -Dlog4j.configuration=file:$log4j -Dkafka.logs.dir=$dir/logs ${KAFKA_JVM_OPTS:-}"
}

write_log4j() {
  local file=$1 log=$2
  cat >"$file" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=\${kafka.logs.dir}/$log
log4j.appender.file.MaxFileSize=10MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.clients.NetworkClient=WARN
log4j.logger.org.reflections=ERROR
EOF
}

# Watch owner pid $1 and process pid $2: when the owner is gone, SIGTERM the process, then
# SIGKILL after 15 s. Detached (setsid, no stdio) so it outlives this script.
watchdog() {
  local owner=$1 pid=$2
  [ -n "$owner" ] || return 0
  [[ $owner =~ ^[0-9]+$ ]] || die "--owner-pid must be a pid, received '$owner'"
  setsid bash -c '
    while kill -0 "$0" 2>/dev/null && kill -0 "$1" 2>/dev/null; do sleep 1; done
    if kill -0 "$1" 2>/dev/null; then
      kill -TERM "$1" 2>/dev/null
      for _ in $(seq 150); do kill -0 "$1" 2>/dev/null || exit 0; sleep 0.1; done
      kill -KILL "$1" 2>/dev/null
    fi' "$owner" "$pid" </dev/null >/dev/null 2>&1 &
}

# Stop the process in pid file $1: SIGTERM (a clean, controlled shutdown), then SIGKILL.
stop_pid() {
  local pidfile=$1 name=$2 wait=${wait_s:-30}
  if ! alive "$pidfile"; then
    rm -f "$pidfile"
    echo "$name: not running ($dir)"
    return 0
  fi
  local pid
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < wait * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$name: pid $pid did not stop within ${wait}s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$pidfile"
  echo "$name: stopped ($dir)"
}

case $cmd in
  start)
    is_port "$port" || die "--port must be a TCP port, received '$port'"
    is_port "$cport" || die "--controller-port must be a TCP port, received '$cport'"
    [ "$port" != "$cport" ] || die "--port and --controller-port must differ"
    [[ $partitions =~ ^[1-9][0-9]*$ ]] || die "--partitions must be a positive integer, received '$partitions'"
    require_jars
    mkdir -p "$dir/logs" "$dir/data"
    dir=$(cd "$dir" && pwd)
    pidfile=$dir/kafka.pid
    if alive "$pidfile"; then
      echo "kafka: already running as pid $(cat "$pidfile") ($dir)"
      exit 0
    fi
    if port_open "$port"; then die "port $port is already in use"; fi
    if port_open "$cport"; then die "controller port $cport is already in use"; fi
    advertised=${advertised:-127.0.0.1:$port}

    # Single node: every internal topic has one replica, and min ISR 1, or the group
    # coordinator and the transaction coordinator never come up.
    cat >"$dir/server.properties" <<EOF
# Written by tools/kafka/kafka.sh; rewritten at every start.
process.roles=broker,controller
node.id=$node_id
controller.quorum.voters=$node_id@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=$partitions
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
# Topics are created explicitly, with their partition counts (a typo must not create a topic).
auto.create.topics.enable=false
# A lone broker has no one to wait for before the first rebalance.
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=268435456
EOF
    write_log4j "$dir/log4j.properties" server.log

    if [ ! -f "$dir/data/meta.properties" ]; then
      if [ -z "$cluster_id" ]; then
        # A Kafka cluster id is 16 random bytes in URL-safe base64 without padding.
        cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
      fi
      # shellcheck disable=SC2046
      "$java" $(jvm_opts 256m "$dir/log4j.properties") -cp "$libs/*" kafka.tools.StorageTool \
        format -t "$cluster_id" -c "$dir/server.properties" >"$dir/logs/format.log" 2>&1 ||
        { cat "$dir/logs/format.log" >&2; die "formatting $dir failed"; }
      echo "$cluster_id" >"$dir/cluster-id"
    fi

    # Readiness is read from the log written by this start only.
    touch "$dir/logs/server.log"
    from=$(($(wc -l <"$dir/logs/server.log") + 1))
    # setsid: the broker gets its own process group, so a signal to the caller's group
    # (Ctrl-C in a terminal) does not kill it halfway through writing its log.
    # shellcheck disable=SC2046
    setsid "$java" $(jvm_opts "${heap:-512m}" "$dir/log4j.properties") -cp "$libs/*" kafka.Kafka \
      "$dir/server.properties" >"$dir/logs/stdout.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    watchdog "$owner" "$(cat "$pidfile")"
    wait=${wait_s:-90}
    for ((i = 0; i < wait * 10; i++)); do
      if ! alive "$pidfile"; then
        tail -n 30 "$dir/logs/stdout.log" "$dir/logs/server.log" >&2 || true
        rm -f "$pidfile"
        die "kafka exited during startup ($dir/logs)"
      fi
      if tail -n "+$from" "$dir/logs/server.log" | grep -q 'Kafka Server started' && port_open "$port"; then
        echo "kafka: ready on 127.0.0.1:$port (controller $cport, pid $(cat "$pidfile"), dir $dir)"
        exit 0
      fi
      sleep 0.1
    done
    tail -n 30 "$dir/logs/server.log" >&2 || true
    stop_pid "$pidfile" kafka >&2
    die "kafka did not become ready within ${wait}s ($dir/logs)"
    ;;

  stop)
    stop_pid "$dir/kafka.pid" kafka
    ;;

  status)
    if alive "$dir/kafka.pid"; then
      port=$(sed -n 's/^listeners=PLAINTEXT:\/\/[^:]*:\([0-9]*\),.*/\1/p' "$dir/server.properties")
      if port_open "$port"; then
        echo "kafka: running, pid $(cat "$dir/kafka.pid"), port $port ($dir)"
        exit 0
      fi
      echo "kafka: pid $(cat "$dir/kafka.pid") is alive but port $port is closed ($dir)"
      exit 1
    fi
    echo "kafka: stopped ($dir)"
    exit 3
    ;;

  mm2-start)
    [ -n "$config" ] && [ -f "$config" ] || die "--config must name an existing MirrorMaker 2 properties file"
    require_jars
    mkdir -p "$dir/logs"
    dir=$(cd "$dir" && pwd)
    pidfile=$dir/mm2.pid
    if alive "$pidfile"; then
      echo "mm2: already running as pid $(cat "$pidfile") ($dir)"
      exit 0
    fi
    write_log4j "$dir/mm2-log4j.properties" mm2.log
    # Dedicated mode: one process runs every replication flow named in the config. Readiness
    # is the caller's to judge (records appearing in the mirror topic): there is no single
    # log line that says "all flows are replicating".
    # shellcheck disable=SC2046
    setsid "$java" $(jvm_opts "${heap:-384m}" "$dir/mm2-log4j.properties") -cp "$libs/*" \
      org.apache.kafka.connect.mirror.MirrorMaker "$config" >"$dir/logs/mm2-stdout.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    watchdog "$owner" "$(cat "$pidfile")"
    sleep 0.5
    alive "$pidfile" || { tail -n 30 "$dir/logs/mm2-stdout.log" >&2; rm -f "$pidfile"; die "MirrorMaker 2 exited at startup"; }
    echo "mm2: started, pid $(cat "$pidfile") ($dir)"
    ;;

  mm2-stop)
    stop_pid "$dir/mm2.pid" mm2
    ;;

  *) die "unknown command '$cmd' (start|stop|status|mm2-start|mm2-stop)" ;;
esac
