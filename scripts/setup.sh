#!/usr/bin/env bash
# Install everything the project needs on a fresh Debian 12 machine:
# the daemons (from Debian), then a virtualenv with the project and its
# test tools. Safe to run again; it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages. courier-imap is left out: it conflicts with
# dovecot-imapd in Debian, and Dovecot is the IMAP reader the tests use.
PACKAGES=(
  postfix            # the MTA, plus smtp-source/smtp-sink for benchmarks
  clamav-daemon clamav
  spamd spamassassin spamc
  sa-compile         # SpamAssassin's rules compiled: 12-20 % less CPU a message
  dovecot-imapd
  maildrop procmail  # peers in the delivery benchmark
  amavisd-new        # the peer in the scanning benchmark
  libfile-libmagic-perl  # lets amavisd-new use libmagic, not file(1): its best
  keepalived haproxy # deploy/ files are checked with their own parsers
  mailgraph          # proves the log format against mailgraph's patterns
  libmagic1          # python-magic
  p7zip-full unar cabextract arj xz-utils bzip2  # archive members
  iproute2 util-linux strace  # namespaces (unshare) in the maildir tests
  procps             # pgrep: the cluster lab (deploy/lab) finds keepalived's children
  python3-venv
  unbound            # a real DNS server with test zones (mail authentication)
  libmail-dkim-perl libcryptx-perl  # an independent DKIM verifier (Ed25519 too)
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  # The system daemons are not used: tests start their own on free ports.
  # Keep apt from starting them (amavisd-new would fail to start without a
  # configured host name and fail the install).
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q '.[tests]'

# Courier-IMAP for the reader tests (optional: they skip without it).
bash scripts/courier.sh || echo "setup: Courier-IMAP not unpacked; its tests will skip" >&2
