#!/bin/sh
# A documented check, not part of make check (it takes minutes): scans a
# running qmail-tlsd with testssl.sh (Debian package testssl.sh).
#
#   sh tests/tls-testssl.sh 127.0.0.1:2525 starttls   # the demo's STARTTLS
#   sh tests/tls-testssl.sh 127.0.0.1:2465            # the demo's port 465
#
# Expected: SSLv2/SSLv3/TLS 1.0/TLS 1.1/TLS 1.3 not offered, TLS 1.2
# offered; only ECDHE-{RSA,ECDSA}-{AES128-GCM,AES256-GCM,CHACHA20-POLY1305}
# suites; forward secrecy for every suite; no renegotiation.
set -eu
target=${1:?usage: tls-testssl.sh host:port [starttls]}
command -v testssl >/dev/null 2>&1 && t=testssl || t=testssl.sh
command -v "$t" >/dev/null 2>&1 || { echo "install the Debian package testssl.sh" >&2; exit 100; }
if [ "${2:-}" = starttls ]; then
  exec "$t" --quiet --color 0 -p -s -f -R -t smtp "$target"
else
  exec "$t" --quiet --color 0 -p -s -f -R "$target"
fi
