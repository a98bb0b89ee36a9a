#!/usr/bin/env bash
# Installs the official AsyncAPI parser (npm @asyncapi/parser, pinned below)
# into .cache/asyncapi of the repository, for scripts/asyncapi-validate.mjs
# and the tests of contract/asyncapi, which check every document `warren
# asyncapi` writes with it. Installs Node.js and npm with apt-get first when
# they are missing (Debian or Ubuntu, as root or with sudo).
# A parser of the pinned version already there is left alone.
# Usage: scripts/asyncapi-deps.sh [--check]   (--check: only report, change nothing)
set -euo pipefail

PARSER_VERSION=3.6.6

cd "$(dirname "$0")/.."
dir=.cache/asyncapi
check_only=false
[ "${1:-}" = "--check" ] && check_only=true

say() { printf 'asyncapi-deps.sh: %s\n' "$*" >&2; }

installed_version() {
  node -p 'require(process.argv[1]).version' "$PWD/$dir/node_modules/@asyncapi/parser/package.json" 2>/dev/null || true
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if $check_only; then
    say "missing: node and npm; install them with: sudo apt-get install nodejs npm"
    exit 1
  fi
  if ! [ -f /etc/debian_version ] || ! command -v apt-get >/dev/null 2>&1 || ! as_root true 2>/dev/null; then
    say "missing: node and npm; install Node.js 18 or later with npm, then run this script again"
    exit 1
  fi
  say "installing nodejs and npm with apt-get"
  apt() { as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"; }
  if ! apt install -y -qq --no-install-recommends nodejs npm >/dev/null 2>&1; then
    apt update -qq >/dev/null
    apt install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
fi

if [ "$(installed_version)" = "$PARSER_VERSION" ]; then
  say "installed: @asyncapi/parser@$PARSER_VERSION in $dir"
  exit 0
fi
if $check_only; then
  say "missing: @asyncapi/parser@$PARSER_VERSION in $dir; install it with: scripts/asyncapi-deps.sh"
  exit 1
fi
say "installing @asyncapi/parser@$PARSER_VERSION into $dir"
mkdir -p "$dir"
# A package.json of its own, so that npm installs here and not in a parent
# directory's project.
[ -f "$dir/package.json" ] || printf '{"name": "warren-asyncapi-tools", "private": true}\n' >"$dir/package.json"
npm install --prefix "$dir" --no-audit --no-fund --loglevel=error --save-exact "@asyncapi/parser@$PARSER_VERSION" >&2
if [ "$(installed_version)" != "$PARSER_VERSION" ]; then
  say "npm ran, but $dir has no @asyncapi/parser@$PARSER_VERSION"
  exit 1
fi
say "installed: @asyncapi/parser@$PARSER_VERSION in $dir"
