"""Pasted recipient lists ("envoi simple"): split, normalise, collapse duplicates, report line by line.

Numbers are separated by newlines, ``;``, ``,`` and tabs; spaces are not separators ("1 45 67 89 03" is
one number).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from engine.domain.numbers import Number, Refusal, normalize
from engine.errors import InvalidInput

DEFAULT_MAX_NUMBERS: Final = 10_000

_ENTRY_SEPARATORS: Final = re.compile(r"[;,\t]")


@dataclass(frozen=True, slots=True)
class PasteLine:
    """One non-blank entry of the paste and what became of it.

    Exactly one of ``number`` and ``refusal`` is set. A duplicate carries the number and
    ``duplicate_of``, the line of its first occurrence; only that first occurrence is called.
    """

    line: int
    input: str
    number: Number | None
    refusal: Refusal | None
    duplicate_of: int | None = None

    @property
    def accepted(self) -> bool:
        """True for the one entry per distinct number that will be called."""
        return self.number is not None and self.duplicate_of is None


@dataclass(frozen=True, slots=True)
class PasteReport:
    """The per-line report shown before a send is confirmed."""

    lines: tuple[PasteLine, ...]

    @property
    def numbers(self) -> tuple[Number, ...]:
        """The distinct accepted numbers, in order of first appearance."""
        return tuple(entry.number for entry in self.lines if entry.number is not None and entry.accepted)

    @property
    def refused(self) -> tuple[PasteLine, ...]:
        return tuple(entry for entry in self.lines if entry.refusal is not None)

    @property
    def duplicates(self) -> tuple[PasteLine, ...]:
        return tuple(entry for entry in self.lines if entry.duplicate_of is not None)


def parse_paste(
    text: str,
    *,
    max_numbers: int = DEFAULT_MAX_NUMBERS,
    allow_international: bool = False,
) -> PasteReport:
    """Parse a pasted block into a per-line report.

    Raises InvalidInput ``too_many`` as soon as more than ``max_numbers`` distinct numbers are accepted,
    so that nothing is created for an oversized list.
    """
    entries: list[PasteLine] = []
    first_line: dict[str, int] = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        for piece in _ENTRY_SEPARATORS.split(line):
            entry = piece.strip()
            if not entry:
                continue
            result = normalize(entry, allow_international=allow_international)
            if isinstance(result, Refusal):
                entries.append(PasteLine(line_number, entry, None, result))
                continue
            seen_on = first_line.get(result.e164)
            if seen_on is not None:
                entries.append(PasteLine(line_number, entry, result, None, duplicate_of=seen_on))
                continue
            if len(first_line) >= max_numbers:
                raise InvalidInput(
                    "too_many",
                    f"more than {max_numbers} distinct numbers in the pasted list",
                    message_fr=(
                        f"Trop de numéros : un envoi accepte au plus {_french_count(max_numbers)} "
                        "numéros différents."
                    ),
                )
            first_line[result.e164] = line_number
            entries.append(PasteLine(line_number, entry, result, None))
    return PasteReport(tuple(entries))


def _french_count(count: int) -> str:
    """10000 → "10 000", with the no-break space French puts between thousands."""
    return f"{count:,}".replace(",", "\u00a0")
