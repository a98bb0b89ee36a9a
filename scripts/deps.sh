#!/usr/bin/env bash
# Installs the Debian packages warren's tests need beyond Go and RabbitMQ
# (scripts/rabbitmq.sh installs the broker):
#   python3, python3-amqp, python3-msgpack   the Python producer test (worker/python_test.go)
#   chromium                                 the dashboard's browser tests (dashboard/browser_test.go,
#                                            internal/browsertest); skipped when /usr/bin/chromium
#                                            exists or CHROMIUM names a browser
# Packages already installed are left alone; missing ones are installed with
# apt-get, from the machine's own apt sources, as root or with sudo.
# Usage: scripts/deps.sh [--check]   (--check: only report, change nothing)
set -euo pipefail

check_only=false
[ "${1:-}" = "--check" ] && check_only=true

say() { printf 'deps.sh: %s\n' "$*" >&2; }

packages=(python3 python3-amqp python3-msgpack chromium)

# The tests run /usr/bin/python3, not whatever python3 is first on PATH.
python_ok() { /usr/bin/python3 -c 'import amqp, msgpack' >/dev/null 2>&1; }
# The browser tests run $CHROMIUM, else /usr/bin/chromium (internal/browsertest).
chromium_ok() { [ -x "${CHROMIUM:-/usr/bin/chromium}" ]; }

"$(dirname "$0")/asyncapi-deps.sh" "$@" # the AsyncAPI parser the tests of contract/asyncapi run (npm, into .cache/asyncapi)

missing=()
for p in "${packages[@]}"; do
  if [ "$p" = chromium ]; then
    chromium_ok || missing+=("$p")
    continue
  fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && python_ok; then
  say "installed: ${packages[*]}"
  exit 0
fi
if [ ${#missing[@]} -eq 0 ]; then
  missing=(python3 python3-amqp python3-msgpack) # installed, yet not importable: install them again
fi

hint="sudo apt-get install ${missing[*]}"
if $check_only; then
  say "missing: ${missing[*]}; install them with: $hint"
  exit 1
fi
if ! [ -f /etc/debian_version ] || ! command -v apt-get >/dev/null 2>&1; then
  say "not a Debian or Ubuntu system: install Python 3 with py-amqp (pip install amqp) and msgpack for /usr/bin/python3, and Chromium (set CHROMIUM to its path)"
  exit 1
fi

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi
}
if ! as_root true 2>/dev/null; then
  say "missing: ${missing[*]}, and this user cannot install packages; run: $hint"
  exit 1
fi

say "installing ${missing[*]} with apt-get"
# DPkg::Lock::Timeout: wait for another installer (a parallel script) rather than fail.
apt() { as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"; }
# Try without refreshing the package lists first: they may be recent enough.
if ! apt install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt update -qq >/dev/null
  apt install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! python_ok; then
  say "installed ${missing[*]}, but /usr/bin/python3 cannot import amqp and msgpack"
  exit 1
fi
if ! chromium_ok; then
  say "installed ${missing[*]}, but ${CHROMIUM:-/usr/bin/chromium} is not there: the browser tests need it"
  exit 1
fi
say "installed: ${packages[*]}"
