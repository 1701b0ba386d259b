#!/usr/bin/env bash
# Courier-IMAP for the reader tests, unpacked from Debian's packages into
# .cache/courier (not installed: Debian's courier-imap conflicts with
# dovecot-imapd, which the other tests use). The tests skip Courier when
# this directory is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/courier
[ -x "$dest/root/usr/bin/imapd" ] && exit 0
mkdir -p "$dest/debs"
(
  cd "$dest/debs"
  # libgamin0 provides libfam.so.0, which imapd links against; gamin its
  # gam_server, without which imapd greets with an [ALERT] line first.
  apt-get download -qq courier-imap courier-base libcourier-unicode4 libgamin0 gamin 2>/dev/null
)
for deb in "$dest"/debs/*.deb; do dpkg -x "$deb" "$dest/root"; done
test -x "$dest/root/usr/bin/imapd"
