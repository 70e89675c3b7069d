"""The service user's command line and the check that it can reach the checkout (issue 17); the process
itself is tests/security/test_service_user.py."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from engine.errors import StackError
from engine.settings import PROJECT_ROOT
from engine.stack.service_user import ServiceUser, check_reachable, command

NOBODY = ServiceUser("vocalcast", 64999, 64999, 64101)


def test_a_checkout_closed_to_the_service_user_is_named() -> None:
    closed = Path(tempfile.mkdtemp(dir="/tmp"))  # 0700, as /root is; /tmp itself is open to all
    try:
        checkout = closed / "clone"
        checkout.mkdir()
        with pytest.raises(StackError, match=f"{closed} is closed to it") as raised:
            check_reachable(NOBODY, [checkout])
        assert f"setfacl -m u:vocalcast:x {closed}" in str(raised.value)
        closed.chmod(0o711)  # traversable (not listable): reachable
        check_reachable(NOBODY, [checkout])
    finally:
        shutil.rmtree(closed)


def test_this_checkout_and_its_python_are_reachable() -> None:
    check_reachable(NOBODY, [PROJECT_ROOT, Path(sys.executable)])


def test_the_command_drops_every_privilege() -> None:
    argv = command(NOBODY, ["true"])
    assert argv[0].endswith("/setpriv") and argv[-2:] == ["--", "true"]
    assert {
        "--reuid=64999",
        "--regid=64999",
        "--groups=64101",
        "--no-new-privs",
        "--bounding-set=-all",
    } <= set(argv)
