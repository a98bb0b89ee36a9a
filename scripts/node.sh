#!/usr/bin/env bash
# Private RabbitMQ nodes for broker-wide fault tests (restart, kill -9,
# alarms, closing every connection), beside the shared broker on port 5672,
# which this script never touches. A node NAME is the Erlang node
# warren-NAME@localhost with its own ports, data, logs, rabbitmq.conf and
# enabled-plugins file in ${WARREN_NODES_DIR:-/tmp/warren-nodes}/NAME. The
# nodes of this script share one Erlang cookie, in .erlang.cookie of that
# directory (their HOME), so that they can form a cluster (scripts/cluster.sh).
#
# Usage:
#   scripts/node.sh start NAME [PORT [CONFIG_LINE...]]
#       start the node, or check that it runs, and print its AMQP URL.
#       PORT: AMQP port, required the first time, then remembered; the
#       distribution port is PORT+20000 unless DIST_PORT is set; MGMT_PORT
#       enables the management plugin on that port. Each CONFIG_LINE is
#       added to rabbitmq.conf, e.g. 'consumer_timeout = 5000'.
#       ADVANCED_CONFIG: Erlang terms for the node's advanced.config (the
#       settings rabbitmq.conf has no key for), comma-separated, e.g.
#       '{rabbit, [{dead_letter_worker_publisher_confirm_timeout, 5000}]}'.
#   scripts/node.sh stop NAME     stop gracefully (SIGTERM); data kept
#   scripts/node.sh kill NAME     SIGKILL the VM, as a crash would; data kept
#   scripts/node.sh rm NAME       kill the node and delete its directory
#   scripts/node.sh status NAME   say whether it runs; exit 0 if it does, 3 if not
#   scripts/node.sh url NAME      print its AMQP URL
#   scripts/node.sh ctl NAME ARGS...
#       rabbitmqctl against the node, e.g.
#       ctl NAME close_all_connections --global "test"
#       ctl NAME set_vm_memory_high_watermark absolute 1   (memory alarm; 0.4 clears it)
#
# As root the nodes run as the rabbitmq user, which owns their directory;
# otherwise as the current user.
#
# WARREN_RABBITMQ_VERSION (4.0 or 4.3) at a node's first start runs it from
# the root filesystem of that RabbitMQ release (scripts/rabbitmq4.sh, which
# builds it when missing) instead of the machine's rabbitmq-server: in a
# chroot and a mount namespace of its own, as that root filesystem's
# rabbitmq user, with the nodes of that release registered with their own
# epmd on EPMD_PORT (default 4370) rather than the machine's on 4369. Its
# directory is then $WARREN_NODES_DIR/NAME inside the root filesystem, and
# $WARREN_NODES_DIR/NAME on the machine a link to it. The node remembers its
# version: later commands need no variable. Needs root.
set -euo pipefail

base="${WARREN_NODES_DIR:-/tmp/warren-nodes}"
start_timeout="${START_TIMEOUT:-90}"

say() { printf 'node.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2; }

cmd="${1:-}"; name="${2:-}"
if [ -z "$cmd" ] || [ -z "$name" ]; then usage; fi
shift 2
# A plain name keeps every path below inside the node's own directory;
# "go" is where the Go test helper keeps its nodes.
if ! [[ "$name" =~ ^[a-z0-9][a-z0-9_-]{0,40}$ ]] || [ "$name" = go ]; then
  die "NAME must be lower-case letters, digits, - and _ (and not \"go\"): $name"
fi
node="warren-$name@localhost"
dir="$base/$name"
here="$(cd "$(dirname "$0")" && pwd)"

# A node's version is set at its first start and kept in node.env.
version=""
if [ -f "$dir/node.env" ]; then
  version=$(sed -n 's/^version=//p' "$dir/node.env")
elif [ "$cmd" = start ]; then
  version="${WARREN_RABBITMQ_VERSION:-}"
fi

# The real scripts, not the wrapper that Debian puts in /usr/sbin: it runs
# the server through su and sends its output to /var/log/rabbitmq.
find_sbin() {
  local d s
  for d in ${WARREN_RABBITMQ_SBIN:-/usr/lib/rabbitmq/bin $(dirname "$(command -v rabbitmq-server 2>/dev/null || echo /usr/sbin/x)") /usr/sbin /usr/local/sbin}; do
    s=$(readlink -f "$d/rabbitmq-server" 2>/dev/null) || continue
    if [ "$(basename "$s")" = rabbitmq-server ] && [ -x "$s" ] && [ -x "$(dirname "$s")/rabbitmqctl" ]; then
      dirname "$s"
      return 0
    fi
  done
  return 1
}
rootfs=""
if [ -n "$version" ]; then
  [ "$(id -u)" = 0 ] || die "a node of RabbitMQ $version runs in a chroot, which needs root"
  if [ "$cmd" = start ]; then
    "$here/rabbitmq4.sh" build "$version" >/dev/null
  fi
  rootfs=$("$here/rabbitmq4.sh" rootfs "$version")
  sbin=/usr/lib/rabbitmq/bin
else
  sbin=$(find_sbin) || die "rabbitmq-server is not installed: on Debian/Ubuntu, sudo apt-get install rabbitmq-server; elsewhere install RabbitMQ 3.10+ and set WARREN_RABBITMQ_SBIN to the directory holding rabbitmq-server and rabbitmqctl"
fi

# As root: run as rabbitmq, as the distribution's service does.
runas=()
owner=""
path="$PATH:/usr/sbin:/usr/local/sbin"
epmd_env=()
if [ -n "$rootfs" ]; then
  # The machine's rabbitmq user (by number: the root filesystem's own
  # rabbitmq user may have another uid, which here is someone else's), or
  # else the root filesystem's; a private mount namespace with its own
  # /proc; setpriv from the root filesystem drops root after the chroot.
  owner=$(id -u rabbitmq 2>/dev/null):$(id -g rabbitmq 2>/dev/null) || owner=""
  [ "$owner" != : ] || owner=$(awk -F: '$1 == "rabbitmq" { print $3 ":" $4 }' "$rootfs/etc/passwd")
  [ -n "$owner" ] || die "$rootfs has no rabbitmq user: rebuild it (rm -rf $rootfs*; $here/rabbitmq4.sh build $version)"
  runas=(unshare --mount --propagation private --root="$rootfs" --mount-proc=/proc --wd="$dir"
    -- setpriv --reuid="${owner%:*}" --regid="${owner#*:}" --clear-groups)
  path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  epmd_port="${EPMD_PORT:-4370}"
  if [ -f "$dir/node.env" ]; then
    epmd_port=$(sed -n 's/^epmd_port=//p' "$dir/node.env")
  fi
  epmd_env=("ERL_EPMD_PORT=$epmd_port")
elif [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
  owner=rabbitmq
  if command -v setpriv >/dev/null 2>&1; then
    runas=(setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups)
  else
    runas=(runuser -u rabbitmq --)
  fi
fi

# The whole environment of the node and of rabbitmqctl: nothing of the
# caller's RABBITMQ_* or ERL_* leaks in, and /etc/rabbitmq/rabbitmq-env.conf
# (which names the shared broker's node) is not read.
# For a node of a root filesystem these paths are the same inside it: the
# chroot holds the directories at the paths they have here.
common_env=(
  "PATH=$path"
  "HOME=$base"
  LANG=C.UTF-8 LC_ALL=C.UTF-8
  "RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf"
  "RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
  ERL_EPMD_ADDRESS=127.0.0.1
  ${epmd_env[@]+"${epmd_env[@]}"}
)

ctl() { "${runas[@]}" env -i "${common_env[@]}" "$sbin/rabbitmqctl" -n "$node" "$@"; }

load_settings() {
  [ -f "$dir/node.env" ] || return 1
  # shellcheck source=/dev/null
  . "$dir/node.env"
}

# pid prints the VM's pid if the node runs. The pid file alone could name
# a process that took the number later: the VM's environment must name
# this node.
pid() {
  local p
  p=$(cat "$dir/node.pid" 2>/dev/null) || return 1
  [ -r "/proc/$p/environ" ] && tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "RABBITMQ_NODENAME=$node" || return 1
  echo "$p"
}

# gone: the process has exited; a zombie waiting for init to reap it
# (the VM's parent, this script, is gone) counts.
gone() { ! kill -0 "$1" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }

wait_gone() { # pid seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    gone "$1" && return 0
    sleep 0.1
  done
  return 1
}

# answers: the port completes the start of an AMQP handshake (the broker
# replies to the protocol header with a connection.start frame, type 1).
answers() {
  local reply
  reply=$(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf 'AMQP\x00\x00\x09\x01' >&3 && head -c 1 <&3 | od -An -tx1" 2>/dev/null) || return 1
  [ "$(echo "$reply" | tr -d ' ')" = "01" ]
}

listening() { timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

url() { echo "amqp://guest:guest@127.0.0.1:$port/"; }

# server_version is what the node's log says it started, e.g.
# "RabbitMQ 4.3.0 on Erlang 27.3.4".
server_version() {
  local v
  v=$(grep -ho 'Starting RabbitMQ [^ ]* on Erlang [^ ]*' "$dir/log/$node.log" 2>/dev/null | tail -n 1)
  echo "${v#Starting }"
}

show_failure() {
  say "node $node did not start; see $dir/stdout.log and $dir/log/"
  grep -h '\[error\]' "$dir/stdout.log" 2>/dev/null | head -20 >&2 || true
  tail -n 15 "$dir/log/$node.log" 2>/dev/null >&2 || true
}

ports_free() {
  local p
  for p in "$port" "$dist_port" ${mgmt_port:+"$mgmt_port"}; do
    if listening "$p"; then
      die "port $p is taken by another process (ss -ltnp 'sport = :$p'): choose another PORT"
    fi
  done
}

start() {
  if load_settings && pid >/dev/null; then
    answers "$port" || die "node $node runs but does not answer on port $port yet"
    url
    return 0
  fi
  if [ $# -gt 0 ]; then
    port="$1"; shift
    if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -le 1024 ] || [ "$port" -ge 45536 ]; then
      die "PORT must be between 1025 and 45535: $port"
    fi
    dist_port="${DIST_PORT:-$((port + 20000))}"
    mgmt_port="${MGMT_PORT:-}"
    ports_free
    if [ -n "$rootfs" ]; then
      # The directory lives in the root filesystem, at the same path as
      # seen from inside; here, a link to it.
      mkdir -p "$base" "$rootfs$dir"
      ln -sfn "$rootfs$dir" "$dir"
    fi
    mkdir -p "$dir/conf.d"
    {
      echo "port=$port"
      echo "dist_port=$dist_port"
      echo "mgmt_port=$mgmt_port"
      if [ -n "$rootfs" ]; then
        echo "version=$version"
        echo "epmd_port=$epmd_port"
      fi
    } >"$dir/node.env"
    {
      echo "# Written by scripts/node.sh for node $node."
      echo "log.console = false"
      echo "log.file.level = info"
      if [ -n "$mgmt_port" ]; then
        echo "management.tcp.ip = 127.0.0.1"
        echo "management.tcp.port = $mgmt_port"
      fi
      for line in "$@"; do echo "$line"; done
    } >"$dir/rabbitmq.conf"
    if [ -n "${ADVANCED_CONFIG:-}" ]; then
      printf '%% Written by scripts/node.sh for node %s.\n[%s].\n' "$node" "$ADVANCED_CONFIG" >"$dir/advanced.config"
    fi
    if [ -n "$mgmt_port" ]; then echo '[rabbitmq_management].' >"$dir/enabled_plugins"; else echo '[].' >"$dir/enabled_plugins"; fi
    : >"$dir/rabbitmq-env.conf"
  else
    load_settings || die "node $name was never started: give its PORT"
    ports_free
  fi
  if [ ! -s "$base/.erlang.cookie" ]; then
    (umask 077 && head -c 15 /dev/urandom | base32 >"$base/.erlang.cookie")
    chmod 400 "$base/.erlang.cookie"
  fi
  if [ -n "$rootfs" ]; then
    # HOME inside the root filesystem: the same cookie, so that the nodes
    # of one release can form a cluster.
    mkdir -p "$rootfs$base"
    cp "$base/.erlang.cookie" "$rootfs$base/.erlang.cookie"
    chown "$owner" "$rootfs$base/.erlang.cookie" && chown -R "$owner" "$dir/"
  elif [ -n "$owner" ]; then chown "$owner:" "$base/.erlang.cookie" && chown -R "$owner:" "$dir"; fi

  echo "=== $(date -Is): starting $node" >>"$dir/stdout.log"
  local began=$SECONDS
  # RABBITMQ_ALLOW_INPUT makes rabbitmq-server exec the VM in its own
  # place (no shell in between forwarding signals), so $! is the VM:
  # SIGKILL reaches it directly. -noinput: no Erlang shell on stdin all the
  # same. setsid: a ^C or a closed terminal does not reach the node.
  (
    cd "$dir" # where the VM would write erl_crash.dump
    exec setsid "${runas[@]}" env -i "${common_env[@]}" \
      "RABBITMQ_NODENAME=$node" \
      RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
      "RABBITMQ_NODE_PORT=$port" \
      "RABBITMQ_DIST_PORT=$dist_port" \
      "RABBITMQ_MNESIA_BASE=$dir/mnesia" \
      "RABBITMQ_LOG_BASE=$dir/log" \
      "RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf" \
      "RABBITMQ_CONFIG_FILES=$dir/conf.d" \
      "RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config" \
      "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins" \
      "RABBITMQ_PID_FILE=$dir/rabbitmq.pid" \
      RABBITMQ_ALLOW_INPUT=true \
      "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-noinput -kernel inet_dist_use_interface {127,0,0,1}" \
      "$sbin/rabbitmq-server"
  ) >>"$dir/stdout.log" 2>&1 </dev/null &
  local launched=$!
  echo "$launched" >"$dir/node.pid"

  # Until the exec chain reaches the VM, the process does not have the
  # node's environment yet: watch the pid itself.
  while ! answers "$port" || { [ -n "$mgmt_port" ] && ! listening "$mgmt_port"; }; do
    if gone "$launched"; then show_failure; exit 1; fi
    if [ $((SECONDS - began)) -ge "$start_timeout" ]; then
      show_failure
      kill -KILL -- "-$launched" 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
  say "node $node ($(server_version)) answers on 127.0.0.1:$port after $((SECONDS - began))s${mgmt_port:+, management on http://127.0.0.1:$mgmt_port}"
  url
}

stop() {
  local p
  p=$(pid) || { say "node $node is not running"; return 0; }
  kill -TERM "$p"
  if ! wait_gone "$p" 60; then
    say "node $node did not stop within 60s: killing it"
    kill -KILL -- "-$p" 2>/dev/null || true
    wait_gone "$p" 10 || die "node $node (pid $p) survived SIGKILL"
  fi
  rm -f "$dir/node.pid"
  say "node $node stopped"
}

kill_node() {
  local p
  p=$(pid) || { say "node $node is not running"; return 0; }
  # The whole process group: the VM and its helper processes.
  kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p"
  wait_gone "$p" 10 || die "node $node (pid $p) survived SIGKILL"
  rm -f "$dir/node.pid"
  say "node $node killed"
}

case "$cmd" in
  start) start "$@" ;;
  stop) stop ;;
  kill) kill_node ;;
  rm)
    if [ -d "$dir" ]; then
      kill_node
      if [ -L "$dir" ]; then rm -rf -- "$(readlink -f "$dir")"; fi
      rm -rf -- "$dir"
      say "removed $dir"
    fi
    ;;
  status)
    if load_settings && p=$(pid); then
      if answers "$port"; then state="running"; else state="running, not answering AMQP (application stopped?)"; fi
      echo "$name: $state, pid $p, $(server_version), $(url)${mgmt_port:+ management http://guest:guest@127.0.0.1:$mgmt_port}"
    elif [ -d "$dir" ]; then
      echo "$name: stopped (data in $dir)"
      exit 3
    else
      echo "$name: not created"
      exit 3
    fi
    ;;
  url)
    load_settings || die "node $name was never started"
    url
    ;;
  ctl)
    [ -d "$dir" ] || die "node $name was never started"
    ctl "$@"
    ;;
  *) usage ;;
esac
