#!/usr/bin/env bash
# The whole test suite: set-up, lint, types, unit + component tests, then
# the integration tests against real Postfix, clamd, spamd and Dovecot.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check mailfilter maildir tests bench
.venv/bin/mypy
# Each pytest run gets a temporary root of its own: daemons running as
# their own users (Postfix) need to traverse it, and another pytest on the
# same machine resets the shared /tmp/pytest-of-$USER to mode 0700.
tmp=$(mktemp -d /tmp/mailfilter-tests.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
n=0
# pytest exits 5 when a marker selects nothing; that is not a failure here.
run() {
  n=$((n + 1))
  .venv/bin/pytest --basetemp="$tmp/$n" "$@" || {
    rc=$?; [ "$rc" -eq 5 ] || exit "$rc"; }
}
run -m "not integration and not reliability and not lab" -q
run -m "integration and not lab" -q
# The reliability suite in its short mode (RELIABILITY_LONG=1 for the long
# mode; `bench/reliability_report.py` regenerates docs/reliability.md).
run -m reliability -q
# The cluster lab (deploy/lab): directors, real servers and a shared store
# in network namespaces, one message and two failovers; root only.
run -m lab -q
