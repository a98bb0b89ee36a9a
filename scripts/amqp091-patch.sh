#!/usr/bin/env bash
# Writes third_party/amqp091-go/WARREN-PATCH.diff: the difference between the
# amqp091-go release warren's copy was taken from and the copy, so the patch
# can be read, applied to a newer release, or checked.
#   scripts/amqp091-patch.sh           write the diff
#   scripts/amqp091-patch.sh --check   fail if the committed diff is not the copy's
# The release comes from the Go module proxy (go mod download), like any
# dependency. See third_party/amqp091-go/WARREN-PATCH.md.
set -euo pipefail
cd "$(dirname "$0")/.."

module=github.com/rabbitmq/amqp091-go
version=v1.16.0 # the release copied; change it only together with the copy
copy=third_party/amqp091-go
out=$copy/WARREN-PATCH.diff

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

say() { printf 'amqp091-patch.sh: %s\n' "$*" >&2; }

tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

# Outside warren's module, so its replace directive does not apply.
upstream=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$module@$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$upstream" ] || [ ! -d "$upstream" ]; then
  say "could not download $module@$version from the Go module proxy (go mod download)"
  exit 1
fi

# The files the copy keeps: the package, its tests, its module files and
# licence (the examples, CI files and generators are left out).
keep() { # from to
  (cd "$1" && find . -maxdepth 1 -type f \( -name '*.go' -o -name go.mod -o -name go.sum -o -name LICENSE -o -name README.md \) -print0 |
    xargs -0 cp --parents -t "$2" && find internal -type f -name '*.go' -print0 | xargs -0 -r cp --parents -t "$2")
}
mkdir -p "$tmp/a" "$tmp/b"
keep "$upstream" "$tmp/a"
# The copy as it is in the work tree, the diff's own files aside; a file the
# copy added shows as new.
(cd "$copy" && find . -type f ! -name 'WARREN-PATCH.*' -print0 | xargs -0 cp --parents -t "$tmp/b")
chmod -R u+w,go-w "$tmp/a" "$tmp/b"
find "$tmp/a" "$tmp/b" -type f -exec chmod 0644 {} +

set +e
(cd "$tmp" && git diff --no-index --no-renames --no-color --src-prefix=a/ --dst-prefix=b/ a b) >"$tmp/diff"
rc=$?
set -e
if [ $rc -gt 1 ]; then
  say "git diff failed"
  exit 1
fi
# git diff names the paths a/a/… and b/b/… (b/b/… on both sides for a new
# file): make them a/… and b/…, for patch -p1 in a fresh copy of the release.
sed -e 's#^diff --git a/[ab]/\(.*\) b/[ab]/\(.*\)$#diff --git a/\1 b/\2#' \
  -e 's#^--- a/[ab]/#--- a/#' -e 's#^+++ b/[ab]/#+++ b/#' "$tmp/diff" >"$tmp/patch"

if $check; then
  if ! cmp -s "$tmp/patch" "$out"; then
    say "$out does not match the copy of $module@$version; run scripts/amqp091-patch.sh (make patch-diff) and commit the result"
    diff -u "$out" "$tmp/patch" | head -40 >&2 || true
    exit 1
  fi
  say "$out matches the copy"
  exit 0
fi
cp "$tmp/patch" "$out"
say "wrote $out ($(grep -c '^diff --git' "$out" || true) files differ from $module@$version)"
