#!/usr/bin/env bash
# Makes sure a RabbitMQ broker answers at AMQP_URL
# (default amqp://guest:guest@127.0.0.1:5672/), with the management plugin
# enabled, and waits until it does:
#   1. a broker already answers          -> enable management if local, done
#   2. rabbitmq-server is installed      -> start it
#   3. Debian/Ubuntu and root (or sudo)  -> apt-get install rabbitmq-server, start it
#   4. Docker is usable                  -> run the official rabbitmq:3-management image
#   5. otherwise                         -> say what to do, exit 1
# Usage: scripts/rabbitmq.sh [--check]   (--check: only report, change nothing)
set -euo pipefail

url="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
check_only=false
[ "${1:-}" = "--check" ] && check_only=true

# host and port from the URL: scheme://[user[:pass]@]host[:port][/vhost]
rest="${url#*://}"
rest="${rest##*@}"
hostport="${rest%%/*}"
host="${hostport%%:*}"
port="${hostport##*:}"
[ "$port" = "$hostport" ] && port=5672
case "$url" in amqps://*) [ "$port" = "$hostport" ] && port=5671 ;; esac
mgmt_port="${MANAGEMENT_PORT:-15672}"

say() { printf 'rabbitmq.sh: %s\n' "$*" >&2; }

# answers: the broker completes the start of an AMQP handshake (it replies to
# the protocol header with a connection.start frame, whose first byte is 1).
answers() {
  local reply
  reply=$(timeout 5 bash -c "exec 3<>/dev/tcp/$host/$port && printf 'AMQP\x00\x00\x09\x01' >&3 && head -c 1 <&3 | od -An -tx1" 2>/dev/null) || return 1
  [ "$(echo "$reply" | tr -d ' ')" = "01" ]
}

mgmt_answers() {
  timeout 5 bash -c "exec 3<>/dev/tcp/$host/$mgmt_port" 2>/dev/null
}

is_local() { [ "$host" = "127.0.0.1" ] || [ "$host" = "localhost" ] || [ "$host" = "::1" ]; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi
}

wait_until() { # seconds, command...
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 1; done
  return 1
}

enable_management() {
  is_local || return 0
  mgmt_answers && return 0
  if command -v rabbitmq-plugins >/dev/null 2>&1; then
    say "enabling the management plugin"
    as_root rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null 2>&1 ||
      say "could not enable rabbitmq_management; run: sudo rabbitmq-plugins enable rabbitmq_management"
    wait_until 60 mgmt_answers || say "the management API does not answer on port $mgmt_port yet"
  fi
}

ready() {
  say "broker answers at $host:$port"
  $check_only || enable_management
  mgmt_answers && say "management API answers at http://$host:$mgmt_port" || true
  exit 0
}

if answers; then ready; fi
if $check_only; then
  say "no broker answers at $host:$port"
  exit 1
fi
if ! is_local; then
  say "no broker answers at $host:$port, which is not this machine: start it there, or unset AMQP_URL to use a local one"
  exit 1
fi

start_local() {
  say "starting rabbitmq-server"
  as_root rabbitmq-server -detached >/dev/null 2>&1 || as_root service rabbitmq-server start >/dev/null 2>&1 || return 1
  wait_until 90 answers
}

if command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ]; then
  PATH="$PATH:/usr/sbin"
  start_local && ready
  say "rabbitmq-server is installed but did not start; see /var/log/rabbitmq/"
  exit 1
fi

if [ -f /etc/debian_version ] && command -v apt-get >/dev/null 2>&1 && as_root true 2>/dev/null; then
  say "installing rabbitmq-server with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq rabbitmq-server >/dev/null
  PATH="$PATH:/usr/sbin"
  # The package may start the service itself (systemd); otherwise start it.
  wait_until 10 answers || start_local || { say "rabbitmq-server was installed but did not start; see /var/log/rabbitmq/"; exit 1; }
  ready
fi

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  say "running the rabbitmq:3-management image with Docker (container warren-rabbitmq)"
  docker rm -f warren-rabbitmq >/dev/null 2>&1 || true
  docker run -d --name warren-rabbitmq -p "$port:5672" -p "$mgmt_port:15672" rabbitmq:3-management >/dev/null
  wait_until 120 answers && { wait_until 60 mgmt_answers || true; ready; }
  say "the container did not answer in time: docker logs warren-rabbitmq"
  exit 1
fi

say "no broker answers at $host:$port and none can be started here."
say "Install RabbitMQ (https://www.rabbitmq.com/docs/download) and start it, or start Docker and run this again,"
say "or set AMQP_URL to a broker you have."
exit 1
