"""``vocalcast numbers check``: one JSON object per non-blank line, exit status only for unusable input."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from engine import cli


@pytest.fixture
def vocalcast(monkeypatch: pytest.MonkeyPatch):
    """Run ``vocalcast`` through engine.cli.main with only the numbers group registered."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["engine.commands.numbers"])

    def run(*argv: str, stdin: bytes | None = None) -> int:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        return cli.main(list(argv))

    return run


def records(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


INPUT = "06 12 34 56 78\n\n   \n0800 FLOWERS\r\n0262 21 34 56\n+44 20 7946 0958\n"


def test_report_of_a_file(vocalcast, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "numbers.txt"
    path.write_text(INPUT, encoding="utf-8")
    assert vocalcast("numbers", "check", str(path)) == 0
    assert records(capsys.readouterr().out) == [
        {
            "line": 1,
            "input": "06 12 34 56 78",
            "e164": "+33612345678",
            "type": "mobile",
            "is_mobile": True,
            "region": "FR",
        },
        {
            "line": 4,
            "input": "0800 FLOWERS",
            "error": "letters",
            "message": "Le numéro contient des lettres.",
        },
        {
            "line": 5,
            "input": "0262 21 34 56",
            "e164": "+262262213456",
            "type": "overseas",
            "is_mobile": False,
            "region": "RE",
        },
        {
            "line": 6,
            "input": "+44 20 7946 0958",
            "error": "international",
            "message": "Numéro étranger : les appels vers l'international ne sont pas activés sur ce compte.",
        },
    ]


def test_standard_input_and_the_international_option(vocalcast, capsys: pytest.CaptureFixture[str]) -> None:
    assert vocalcast("numbers", "check", "--allow-international", stdin=INPUT.encode()) == 0
    lines = records(capsys.readouterr().out)
    assert [line.get("e164", line.get("error")) for line in lines] == [
        "+33612345678",
        "letters",
        "+262262213456",
        "+442079460958",
    ]
    assert lines[-1]["type"] == "international"


def test_dash_and_no_argument_both_read_standard_input(vocalcast, capsys: pytest.CaptureFixture[str]) -> None:
    assert vocalcast("numbers", "check", "-", stdin=b"0612345678\n") == 0
    assert vocalcast("numbers", "check", stdin=b"0612345679\n") == 0
    assert [line["e164"] for line in records(capsys.readouterr().out)] == ["+33612345678", "+33612345679"]


def test_cp1252_and_bom_input(vocalcast, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.txt").write_bytes("Tél 06 12 34 56 78\r\n".encode("cp1252"))
    (tmp_path / "b.txt").write_bytes(b"\xef\xbb\xbf06 12 34 56 78\r\n")
    assert vocalcast("numbers", "check", str(tmp_path / "a.txt")) == 0
    assert vocalcast("numbers", "check", str(tmp_path / "b.txt")) == 0
    out = records(capsys.readouterr().out)
    assert out[0] == {
        "line": 1,
        "input": "Tél 06 12 34 56 78",
        "error": "letters",
        "message": out[0]["message"],
    }
    assert out[1]["e164"] == "+33612345678"


def test_empty_input_prints_nothing(vocalcast, capsys: pytest.CaptureFixture[str]) -> None:
    assert vocalcast("numbers", "check", stdin=b"\n\n") == 0
    assert capsys.readouterr().out == ""


def test_unreadable_file_fails(vocalcast, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert vocalcast("numbers", "check", str(tmp_path / "missing.txt")) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "missing.txt" in captured.err


def test_a_directory_is_unreadable(vocalcast, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert vocalcast("numbers", "check", str(tmp_path)) == 2
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "data", [b"\x00\x01\x02binary", "06 12 34 56 78\n".encode("utf-16"), b"\x81\x8d\x8f"]
)
def test_non_text_input_fails(
    vocalcast, tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes
) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert vocalcast("numbers", "check", str(path)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "not text" in captured.err
