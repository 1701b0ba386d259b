#!/usr/bin/env bash
# The whole test suite: set-up, lint, types, unit + component tests, then
# the integration tests against real Postfix, clamd, spamd and Dovecot.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check mailfilter maildir tests bench
.venv/bin/mypy
# pytest exits 5 when a marker selects nothing; that is not a failure here.
run() { .venv/bin/pytest "$@" || { rc=$?; [ "$rc" -eq 5 ] || exit "$rc"; }; }
run -m "not integration and not reliability and not lab" -q
run -m "integration and not lab" -q
# The reliability suite in its short mode (RELIABILITY_LONG=1 for the long
# mode; `bench/reliability_report.py` regenerates docs/reliability.md).
run -m reliability -q
