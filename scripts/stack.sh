#!/usr/bin/env bash
# The main job on one machine: install, start the local stack (clamd,
# spamd, Postfix with the amavis recipe, mailfilter), then prove it works
# with `mailfilter --selftest`. Stop it with: .venv/bin/python scripts/stack.py down
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python scripts/stack.py up
eval "$(.venv/bin/python scripts/stack.py env)"
# shellcheck disable=SC2086
.venv/bin/mailfilter --selftest $MAILFILTER_ARGS
