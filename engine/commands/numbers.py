"""``vocalcast numbers check [FILE|-]``: normalise one number per line, print one JSON object per line.

It is a report: refused numbers do not change the exit status; only unusable input does.
"""

from __future__ import annotations

import argparse
import codecs
import json
import sys

from engine.commands.inputs import read_input
from engine.domain.numbers import Refusal, normalize
from engine.errors import InvalidInput


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``numbers`` group to the ``vocalcast`` parser."""
    numbers = subparsers.add_parser("numbers", help="check and normalise phone numbers")
    sub = numbers.add_subparsers(dest="numbers_command", required=True, metavar="ACTION")
    check = sub.add_parser(
        "check",
        help="normalise one number per line and print one JSON object per non-blank line",
        description=(
            "Read one number per line from FILE (or standard input with '-') and print one JSON object "
            "per non-blank line: the E.164 form and type, or the refusal code and its French reason."
        ),
    )
    check.add_argument("file", nargs="?", default="-", metavar="FILE|-", help="input file (default: stdin)")
    check.add_argument(
        "--allow-international",
        action="store_true",
        help="accept non-French numbers (off by default, as on customer accounts)",
    )
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Print the report; raises InvalidInput (exit status 2 through the CLI) on unusable input."""
    text = _decode(read_input(args.file), args.file)
    out = sys.stdout
    for line_number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        result = normalize(entry, allow_international=args.allow_international)
        record: dict[str, object] = {"line": line_number, "input": entry}
        if isinstance(result, Refusal):
            record.update(error=result.code, message=result.message_fr)
        else:
            record.update(
                e164=result.e164, type=result.type, is_mobile=result.is_mobile, region=result.region
            )
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()
    return 0


def _decode(data: bytes, name: str) -> str:
    """UTF-8 (BOM or not), else cp1252; NUL bytes or undecodable bytes mean it is not text."""
    if b"\x00" not in data:
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        for encoding in ("utf-8", "cp1252"):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                continue
    label = "standard input" if name == "-" else name
    raise InvalidInput(
        "not_text",
        f"{label} is not text (binary content or unknown encoding)",
        message_fr="Ce fichier n'est pas un fichier texte.",
    )
