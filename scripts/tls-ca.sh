#!/usr/bin/env bash
# Makes the certificates for TLS tests with openssl, in DIR:
#   ca.pem, ca.key             a test certificate authority
#   server.pem, server.key     the broker's certificate, signed by it, for
#                              localhost, 127.0.0.1 and ::1
#   client.pem, client.key     a client certificate (CN warren-test-client),
#                              signed by it, for brokers that verify peers
#   wrong-ca.pem, wrong-ca.key another authority, which signed nothing here:
#                              a client trusting only it must refuse the broker
# Keys are ECDSA P-256, certificates valid for DAYS days (default 30).
# When every file is there already nothing is done, unless --force.
# Usage: scripts/tls-ca.sh [--force] DIR
set -euo pipefail

force=false
if [ "${1:-}" = "--force" ]; then force=true; shift; fi
dir="${1:?usage: scripts/tls-ca.sh [--force] DIR}"
days="${DAYS:-30}"

say() { printf 'tls-ca.sh: %s\n' "$*" >&2; }

if ! command -v openssl >/dev/null 2>&1; then
  say "openssl is not installed: on Debian/Ubuntu, sudo apt-get install openssl"
  exit 1
fi

files=(ca.pem ca.key server.pem server.key client.pem client.key wrong-ca.pem wrong-ca.key)
mkdir -p "$dir"
if ! $force; then
  have=0
  for f in "${files[@]}"; do [ -s "$dir/$f" ] && have=$((have + 1)); done
  if [ "$have" = "${#files[@]}" ]; then
    say "certificates already in $dir (--force to make new ones)"
    exit 0
  fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name subject
  key "$work/$1.key"
  openssl req -x509 -new -key "$work/$1.key" -sha256 -days "$days" -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$work/$1.pem"
}

leaf() { # name subject extensions
  key "$work/$1.key"
  openssl req -new -key "$work/$1.key" -subj "$2" -out "$work/$1.csr"
  printf '%b' "$3" >"$work/$1.ext"
  openssl x509 -req -in "$work/$1.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -sha256 -days "$days" -extfile "$work/$1.ext" -out "$work/$1.pem" 2>/dev/null
}

ca ca "/CN=warren test CA"
ca wrong-ca "/CN=warren wrong CA"
leaf server "/CN=localhost" \
  "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
leaf client "/CN=warren-test-client" \
  "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"

openssl verify -CAfile "$work/ca.pem" "$work/server.pem" "$work/client.pem" >/dev/null
for f in "${files[@]}"; do cp "$work/$f" "$dir/$f"; done
chmod 644 "$dir"/*.pem
chmod 600 "$dir"/*.key
say "made a test CA, server (localhost, 127.0.0.1, ::1), client and wrong-CA certificates in $dir, valid $days days"
