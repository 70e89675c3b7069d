#!/usr/bin/env bash
# Installs what vocalcast needs on a Debian 12 host, as root: Debian packages (never from sid),
# then the Python environment in .venv (Debian's own python3). Fast and silent when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages of the host. The Asterisk root (Debian sid) is built later by `vocalcast stack`,
# inside its own directory: nothing from sid is ever installed here.
APT_PACKAGES=(
  python3 python3-venv python3-dev gcc          # the engine's Python environment
  postgresql-15 postgresql-client-15            # the project-owned database cluster
  mmdebstrap debian-archive-keyring ca-certificates  # builds the Asterisk 22 root from sid
  sip-tester                                    # SIPp: demo phone, test callees and trunks
  tshark                                        # decodes our generated pcaps independently (tests/unit)
  ffmpeg sox espeak-ng                          # audio conversion; test audio
  asterisk-core-sounds-fr-wav asterisk-core-sounds-en-wav asterisk-prompt-fr-armelle
                                                # real voices of the AMD bench (bench/support/amd_corpus.py)
  iproute2 procps util-linux                    # ss, pkill, mountpoint/findmnt
  logrotate                                     # the engine rotates its instance's logs
  acl                                           # setfacl: the service user traverses a clone under /root
  docker-compose kamailio systemd               # validators of docker/ and deploy/systemd/ (tests/unit/test_deploy.py)
  kamailio-postgres-modules                     # the edge's fence check reads the nodes' epochs (issue 19)
  podman runc                                   # `make smoke`: docker/compose.yml run for real (tests/smoke)
  chromium chromium-driver fonts-dejavu-core    # browser tests of the private space (tests/e2e)
)
# tests/e2e/vendor/axe.min.js is axe-core (MPL-2.0, licence beside it), taken from the npm registry:
#   npm pack axe-core@4.14.1 && tar xzf axe-core-4.14.1.tgz package/axe.min.js package/LICENSE
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # wireshark-common asks whether non-root users may capture: no (tests capture as root, in-process).
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  # Debian's postgresql-15 starts a system cluster; we never use it (policy-rc.d keeps it stopped).
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  # Without apt-utils debconf says it delays configuration: noise, the answers are preseeded above.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    2> >(grep -v "delaying package configuration" >&2)
fi

# Python environment, rebuilt when pyproject.toml changes.
stamp=".venv/.vocalcast-$(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  echo "bootstrap: creating the Python environment in .venv"
  rm -rf .venv
  /usr/bin/python3 -m venv .venv
  # This machine's pip config lists local indexes that may be absent; their warnings are noise.
  .venv/bin/pip install -q --upgrade pip 2> >(grep -v "is ignored" >&2)
  PYTHONWARNINGS=ignore .venv/bin/pip install -q -e '.[dev]' 2> >(grep -v "is ignored" >&2)
  touch "$stamp"
fi
