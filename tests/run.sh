#!/usr/bin/env bash
# Install what the tests need on a fresh Debian machine, then run every test.
# Dovecot comes from Debian's dovecot-imapd and LibreOffice (for .doc and .wps
# reports) from its -nogui packages. The tests start their own Dovecot, so the
# system service is kept from starting during the install.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-imapd)
command -v soffice >/dev/null 2>&1 || missing+=(libreoffice-writer-nogui libreoffice-calc-nogui)
ldconfig -p 2>/dev/null | grep -q 'libarchive\.so\.13' || missing+=(libarchive13)

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: run 'sudo apt-get install -y --no-install-recommends ${missing[*]}' first" >&2
        exit 1
    fi
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$created_policy" -eq 1 ]; then
        rm -f "$policy"
    fi
fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
exec python3 -m pytest "$@"
