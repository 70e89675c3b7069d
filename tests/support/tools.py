"""What a test run needs from the machine: root, and the programs the tests run. scripts/bootstrap.sh
installs every one (`make test` runs it first), so nothing is optional: tests/conftest.py stops the run
with the list of what is missing, before any test, instead of letting tests skip."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

from tests.e2e.webdriver import CHROMEDRIVER, CHROMIUM

# Each program the tests run, with the Debian package it comes from (tests/unit/test_tools.py checks
# that scripts/bootstrap.sh installs each package).
TOOLS: Mapping[str, str] = {
    "ffmpeg": "ffmpeg",  # test audio; engine.audio converts with it
    "ffprobe": "ffmpeg",  # engine.audio measures with it
    "espeak-ng": "espeak-ng",  # spoken test messages (IVR recordings, audio conversion)
    "sipp": "sip-tester",  # callees, trunks and callers of the integration tests
    "tshark": "tshark",  # decodes our generated and captured pcaps independently of our own reader
    "logrotate": "logrotate",  # the engine's log rotation (tests/unit/test_logrotate.py)
    "setpriv": "util-linux",  # the engine drops root (tests/security/test_service_user.py)
    "setfacl": "acl",  # a clone under /root opened to the service user (tests/unit/test_service_user.py)
    "getfacl": "acl",
    "docker-compose": "docker-compose",  # validates docker/compose.yml (tests/unit/test_deploy.py)
    "kamailio": "kamailio",  # parses and runs the edge's config (tests/unit/test_deploy.py)
    "kamcmd": "kamailio",
    "systemd-analyze": "systemd",  # verifies deploy/systemd/ (tests/unit/test_deploy.py)
    str(CHROMIUM): "chromium",  # the browser tests (tests/e2e)
    str(CHROMEDRIVER): "chromium-driver",
}

ROOT_REASON = (
    "the tests run as root: the stack mounts and chroots Asterisk's root and runs PostgreSQL as its own "
    "user, and RTP capture opens AF_PACKET sockets; run `make test` as root"
)


def missing(tools: Mapping[str, str] | None = None, euid: int | None = None) -> list[str]:
    """One line per unmet requirement, naming the program and its Debian package; [] when all is there."""
    problems = [] if (os.geteuid() if euid is None else euid) == 0 else [ROOT_REASON]
    problems += [
        f"{tool} is missing: Debian package {package}; scripts/bootstrap.sh installs it (`make test` runs it)"
        for tool, package in (TOOLS if tools is None else tools).items()
        if shutil.which(tool) is None
    ]
    return problems
