#!/usr/bin/env bash
# RabbitMQ 4.x for private test nodes, on a machine whose own rabbitmq-server
# is older: a minimal Debian root filesystem holding the release's
# rabbitmq-server and Erlang, built once with debootstrap and cached. Nodes
# run from it in a chroot (scripts/node.sh, internal/rabbitnode), with
# their own ports and their own epmd port; nothing of the machine's broker
# is touched.
#
#   VERSION  Debian suite   root filesystem
#   4.0      trixie         ${WARREN_ROOTFS_DIR:-/var/cache/warren/rootfs}/rabbitmq-4.0
#   4.3      forky          ${WARREN_ROOTFS_DIR:-/var/cache/warren/rootfs}/rabbitmq-4.3
#
# Usage:
#   scripts/rabbitmq4.sh build VERSION
#       build the root filesystem, or reuse a finished one (a half-built one
#       is built again), and print what it holds. Needs root; installs
#       debootstrap first when missing. About a minute and 350 MB.
#   scripts/rabbitmq4.sh info VERSION
#       print what a finished root filesystem holds (exit 3 if there is none)
#   scripts/rabbitmq4.sh rootfs VERSION
#       print its path (exit 3 if it is not built)
#   scripts/rabbitmq4.sh test-node VERSION
#       start (or reuse) the node that `make test RABBITMQ=VERSION` runs the
#       suite against, with the management plugin, and print the variables
#       that point tests at it (AMQP_URL, MANAGEMENT_URL,
#       WARREN_RABBITMQ_VERSION) as shell exports. The CLI's own
#       WARREN_MANAGEMENT_URL is left to the tests, which check how the CLI
#       finds the management API.
#   scripts/rabbitmq4.sh test-node-rm VERSION
#       remove that node and its data
#   scripts/rabbitmq4.sh mirror
#       print the Debian mirror the build would use
#
# Any node of scripts/node.sh or scripts/cluster.sh runs from the root
# filesystem when WARREN_RABBITMQ_VERSION is set at its first start:
#   WARREN_RABBITMQ_VERSION=4.3 MGMT_PORT=15801 scripts/node.sh start a 5801
#   scripts/node.sh ctl a status         (the node remembers its version)
#   WARREN_RABBITMQ_VERSION=4.3 scripts/cluster.sh start
#
# The mirror is the one this machine's apt uses (the first non-security
# entry of /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list), or
# WARREN_DEBIAN_MIRROR.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${WARREN_ROOTFS_DIR:-/var/cache/warren/rootfs}"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

say() { printf 'rabbitmq4.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2; }

# suite_of prints the Debian suite that carries the RabbitMQ release.
suite_of() {
  case "$1" in
    4.0) echo trixie ;;
    4.3) echo forky ;;
    *) die "VERSION must be 4.0 (Debian trixie) or 4.3 (Debian forky): $1" ;;
  esac
}

# debian_mirror prints the archive URL this machine's apt uses.
debian_mirror() {
  if [ -n "${WARREN_DEBIAN_MIRROR:-}" ]; then
    echo "${WARREN_DEBIAN_MIRROR%/}"
    return 0
  fi
  local f m
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822 stanzas: the first URI of a "deb" stanza whose suites are
    # not the security archive's.
    m=$(awk '
      function flush() { if (types ~ /(^| )deb( |$)/ && suites !~ /security/ && uri != "") { print uri; found = 1; exit } types = suites = uri = "" }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      tolower($1) == "types:" { types = substr($0, index($0, ":") + 1) }
      tolower($1) == "suites:" { suites = substr($0, index($0, ":") + 1) }
      tolower($1) == "uris:" { uri = $2 }
      END { if (!found) flush() }' "$f")
    if [ -n "$m" ]; then echo "${m%/}"; return 0; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    m=$(awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } if ($(i+1) !~ /security/) { print $i; exit } }' "$f")
    if [ -n "$m" ]; then echo "${m%/}"; return 0; fi
  done
  die "found no Debian mirror in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list: set WARREN_DEBIAN_MIRROR to one"
}

# in_root runs a command inside the root filesystem, in a mount namespace
# of its own with /proc mounted there: nothing is mounted on the machine,
# and nothing stays mounted when the command ends, however it ends.
in_root() { # root cmd...
  local root=$1; shift
  unshare --mount --propagation private --root="$root" --mount-proc=/proc -- \
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

need_root() {
  [ "$(id -u)" = 0 ] || die "building a root filesystem needs root (debootstrap, chroot): run sudo $0 build $1"
}

ensure_debootstrap() {
  command -v debootstrap >/dev/null 2>&1 && return 0
  PATH="$PATH:/usr/sbin:/sbin"
  command -v debootstrap >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || die "debootstrap is missing and this is no Debian/Ubuntu machine: install debootstrap"
  say "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null
}

ensure_keyring() {
  [ -s "$keyring" ] && return 0
  say "installing debian-archive-keyring"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debian-archive-keyring >/dev/null
  [ -s "$keyring" ] || die "$keyring is missing: install the debian-archive-keyring package"
}

info_file() { echo "$cache/rabbitmq-$1.version"; }
root_of() { echo "$cache/rabbitmq-$1"; }

built() { [ -s "$(info_file "$1")" ] && [ -x "$(root_of "$1")/usr/lib/rabbitmq/bin/rabbitmq-server" ]; }

build() {
  local version=$1 suite root partial began mirror script size
  suite=$(suite_of "$version")
  root=$(root_of "$version")
  if built "$version"; then cat "$(info_file "$version")"; return 0; fi
  need_root "$version"
  mkdir -p "$cache"
  # One build at a time per version: concurrent test runs wait for it.
  exec 9>"$cache/rabbitmq-$version.lock"
  if ! flock -n 9; then
    say "another build of rabbitmq-$version runs; waiting for it"
    flock 9
  fi
  if built "$version"; then cat "$(info_file "$version")"; return 0; fi

  ensure_debootstrap
  ensure_keyring
  mirror=$(debian_mirror)
  partial="$root.partial"
  # A build that was interrupted is redone from scratch. --one-file-system:
  # never follow a mount into the machine's own files.
  rm -rf --one-file-system -- "$partial" "$root" "$(info_file "$version")"
  began=$SECONDS
  # Newer suites than the machine's debootstrap knows are built like sid.
  script=/usr/share/debootstrap/scripts/$suite
  [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
  say "building $root: debootstrap $suite (mirror $mirror), then rabbitmq-server"
  # In a mount namespace of its own: the /proc and /sys that debootstrap
  # mounts inside the target go away with it, even when it is killed.
  if ! unshare --mount --propagation private -- debootstrap --variant=minbase --keyring="$keyring" \
    "$suite" "$partial" "$mirror" "$script" >"$cache/rabbitmq-$version.build.log" 2>&1; then
    tail -n 20 "$cache/rabbitmq-$version.build.log" >&2
    die "debootstrap $suite failed; the whole log is in $cache/rabbitmq-$version.build.log"
  fi

  # Erlang's distribution (the node, rabbitmqctl, epmd) finds nodes
  # @localhost: debootstrap leaves no /etc/hosts.
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$partial/etc/hosts"
  # Nothing may start while packages install: the node runs only when a
  # test starts it.
  printf '#!/bin/sh\nexit 101\n' >"$partial/usr/sbin/policy-rc.d"
  chmod 755 "$partial/usr/sbin/policy-rc.d"
  # A testing suite's Release file can be past its Valid-Until; the
  # signature is still checked against the archive keyring.
  cat >"$partial/etc/apt/apt.conf.d/90warren" <<'EOF'
Acquire::Check-Valid-Until "false";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
  cat >"$partial/etc/dpkg/dpkg.cfg.d/90warren" <<'EOF'
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/info/*
EOF
  {
    in_root "$partial" apt-get update -qq &&
      in_root "$partial" apt-get install -y -qq rabbitmq-server &&
      # setpriv (to drop root inside the chroot while keeping the
      # parent-death signal) is in util-linux up to trixie, its own
      # package after.
      { in_root "$partial" sh -c 'command -v setpriv' || in_root "$partial" apt-get install -y -qq setpriv; }
  } >>"$cache/rabbitmq-$version.build.log" 2>&1 || {
    tail -n 20 "$cache/rabbitmq-$version.build.log" >&2
    die "installing rabbitmq-server in $partial failed; the whole log is in $cache/rabbitmq-$version.build.log"
  }
  in_root "$partial" apt-get clean
  rm -rf -- "$partial"/var/lib/apt/lists/* "$partial"/var/log/apt/* "$partial"/var/cache/debconf/*-old

  local server erlang
  server=$(in_root "$partial" dpkg-query -W -f '${Version}' rabbitmq-server)
  erlang=$(in_root "$partial" dpkg-query -W -f '${Version}' erlang-base)
  case "$server" in
    "$version".*) ;;
    *) die "Debian $suite now carries rabbitmq-server $server, not $version.x: update the suite of $version in $0" ;;
  esac
  mv -- "$partial" "$root"
  size=$(du -sm --one-file-system "$root" | cut -f1)
  # Written last: its presence marks a finished build.
  cat >"$(info_file "$version").tmp" <<EOF
rabbitmq-server=$server
erlang-base=$erlang
suite=$suite
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
build_seconds=$((SECONDS - began))
size_mb=$size
EOF
  mv -- "$(info_file "$version").tmp" "$(info_file "$version")"
  say "built $root in $((SECONDS - began))s, ${size} MB: rabbitmq-server $server, Erlang $erlang"
  cat "$(info_file "$version")"
}

info() {
  built "$1" || { say "rabbitmq-$1 is not built: run $0 build $1"; exit 3; }
  cat "$(info_file "$1")"
}

# The node of `make test RABBITMQ=VERSION`: one per version, on fixed
# ports (4.0: AMQP 5640, management 15640; 4.3: 5643 and 15643).
test_node() {
  local version=$1 name port url
  suite_of "$version" >/dev/null
  name="test-${version//./-}"
  port=$((5600 + ${version//./}))
  build "$version" >/dev/null
  url=$(WARREN_RABBITMQ_VERSION=$version MGMT_PORT=$((port + 10000)) "$here/node.sh" start "$name" "$port")
  cat <<EOF
export AMQP_URL=$url
export MANAGEMENT_URL=http://guest:guest@127.0.0.1:$((port + 10000))
export WARREN_RABBITMQ_VERSION=$version
EOF
}

cmd="${1:-}"; version="${2:-}"
if [ "$cmd" = mirror ]; then debian_mirror; exit 0; fi
[ -n "$cmd" ] && [ -n "$version" ] || usage
suite_of "$version" >/dev/null
case "$cmd" in
  build) build "$version" ;;
  info) info "$version" ;;
  rootfs)
    built "$version" || { say "rabbitmq-$version is not built: run $0 build $version"; exit 3; }
    root_of "$version"
    ;;
  test-node) test_node "$version" ;;
  test-node-rm) "$here/node.sh" rm "test-${version//./-}" ;;
  *) usage ;;
esac
