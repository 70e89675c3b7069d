"""What customers really paste: a fixed-seed mix of French numbers in every shape they come in (spaces,
dots, dashes, slashes, +33, 0033, "+33 (0)", Excel's lost 0 and lost +, no-break spaces), duplicates in
another shape, overseas and foreign numbers, special and short numbers, numbers with letters, junk and
blank lines. Each line is labelled with its kind, so a bench can say where the time goes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# Ten-digit national numbers, formatted. Weights: how often each shape comes in a real paste (spaced and
# compact first; Word and Excel bring the no-break spaces, the lost 0 and the lost +).
_NBSP = "\u00a0"
FRENCH_SHAPES: dict[str, tuple[int, Callable[[str], str]]] = {
    "spaced": (30, lambda d: f"{d[:2]} {d[2:4]} {d[4:6]} {d[6:8]} {d[8:]}"),
    "compact": (18, lambda d: d),
    "dots": (9, lambda d: f"{d[:2]}.{d[2:4]}.{d[4:6]}.{d[6:8]}.{d[8:]}"),
    "dashes": (5, lambda d: f"{d[:2]}-{d[2:4]}-{d[4:6]}-{d[6:8]}-{d[8:]}"),
    "slashes": (1, lambda d: f"{d[:2]}/{d[2:4]}/{d[4:6]}/{d[6:8]}/{d[8:]}"),
    "plus33_spaced": (8, lambda d: f"+33 {d[1]} {d[2:4]} {d[4:6]} {d[6:8]} {d[8:]}"),
    "plus33_compact": (5, lambda d: f"+33{d[1:]}"),
    "0033": (5, lambda d: f"0033 {d[1]} {d[2:4]} {d[4:6]} {d[6:8]} {d[8:]}"),
    "plus33_paren0": (5, lambda d: f"+33 (0){d[1]} {d[2:4]} {d[4:6]} {d[6:8]} {d[8:]}"),
    "excel_lost_0": (4, lambda d: d[1:]),
    "excel_lost_plus": (3, lambda d: f"33{d[1:]}"),
    "nbsp_spaced": (4, lambda d: _NBSP.join((d[:2], d[2:4], d[4:6], d[6:8], d[8:]))),
    "edge_spaces": (3, lambda d: f"  {d[:2]} {d[2:4]} {d[4:6]} {d[6:8]} {d[8:]} "),
}
_PREFIXES = ("06", "06", "06", "07", "01", "02", "03", "04", "05", "09")
# phonenumbers' example numbers for the overseas departments (national form → country code); the last
# three digits vary.
_OVERSEAS = {
    "0692123456": "262", "0262161234": "262", "0639012345": "262", "0269601234": "262",
    "0690001234": "590", "0590201234": "590", "0696201234": "596", "0596301234": "596",
    "0694201234": "594", "0594101234": "594",
}  # fmt: skip
FOREIGN = ("+44 20 7946 0958", "+32 470 12 34 56", "0041 79 123 45 67", "+1 212 555 0199",
           "+49 30 901820", "0034 612 34 56 78")  # fmt: skip
SPECIAL = ("15", "112", "3615", "118 218", "0892 68 01 01", "0810 12 34 56", "0800 12 34 56",
           "0899 23 45 67", "17")  # fmt: skip
JUNK = ("-", "?", "n/a", "#N/A", "néant", "0", "12", "06 12 34", "06 12 34 56 78 90", "+", "00",
        "12345678901234567", "––", "06 12 34 56 7")  # fmt: skip
# (weight, kind) of each line; French numbers take what is left.
KINDS = (
    ("duplicate", 8),
    ("overseas", 4),
    ("letters", 3),
    ("junk", 3),
    ("blank", 3),
    ("foreign", 2),
    ("special", 2),
)


@dataclass(frozen=True, slots=True)
class PasteLine:
    kind: str  # a FRENCH_SHAPES name, or one of KINDS
    text: str


def national_number(rnd: random.Random) -> str:
    """A ten-digit national number in a common block (random digits: some blocks are unallocated)."""
    return rnd.choice(_PREFIXES) + f"{rnd.randrange(10**8):08d}"


def _overseas(rnd: random.Random) -> str:
    base, code = rnd.choice(list(_OVERSEAS.items()))
    national = base[:7] + f"{rnd.randrange(1000):03d}"
    shape = rnd.randrange(3)
    if shape == 0:
        return f"{national[:4]} {national[4:6]} {national[6:8]} {national[8:]}"
    if shape == 1:
        return f"+{code} {national[1:4]} {national[4:6]} {national[6:8]} {national[8:]}"
    return f"00{code}{national[1:]}"


def _letters(rnd: random.Random, digits: str) -> str:
    spaced = FRENCH_SHAPES["spaced"][1](digits)
    return rnd.choice(
        (
            "O" + spaced[1:],  # the letter O for a zero
            spaced[:-1] + "B",
            f"Tél. {spaced}",
            f"{spaced} poste 12",
            f"{spaced} (bureau)",
            "0800 FLEURS",
        )
    )


def paste_lines(count: int, rnd: random.Random) -> list[PasteLine]:
    """`count` lines of a realistic paste (blank lines included), always the same for the same seed."""
    shapes = list(FRENCH_SHAPES)
    shape_weights = [FRENCH_SHAPES[s][0] for s in shapes]
    kinds = [k for k, _ in KINDS] + ["french"]
    kind_weights = [w for _, w in KINDS] + [100 - sum(w for _, w in KINDS)]
    seen: list[str] = []
    lines: list[PasteLine] = []
    for _ in range(count):
        kind = rnd.choices(kinds, kind_weights)[0]
        if kind == "duplicate" and seen:
            shape = rnd.choices(shapes, shape_weights)[0]
            lines.append(PasteLine(kind, FRENCH_SHAPES[shape][1](rnd.choice(seen))))
        elif kind == "overseas":
            lines.append(PasteLine(kind, _overseas(rnd)))
        elif kind == "letters":
            lines.append(PasteLine(kind, _letters(rnd, national_number(rnd))))
        elif kind == "junk":
            lines.append(PasteLine(kind, rnd.choice(JUNK)))
        elif kind == "blank":
            lines.append(PasteLine(kind, rnd.choice(("", "", " ", "\t"))))
        elif kind == "foreign":
            lines.append(PasteLine(kind, rnd.choice(FOREIGN)))
        elif kind == "special":
            lines.append(PasteLine(kind, rnd.choice(SPECIAL)))
        else:
            digits = national_number(rnd)
            seen.append(digits)
            shape = rnd.choices(shapes, shape_weights)[0]
            lines.append(PasteLine(shape, FRENCH_SHAPES[shape][1](digits)))
    return lines


def valid_lines(count: int, rnd: random.Random, is_valid: Callable[[str], bool]) -> list[PasteLine]:
    """`count` distinct valid French numbers, each in a shape drawn with the paste's weights."""
    shapes = list(FRENCH_SHAPES)
    shape_weights = [FRENCH_SHAPES[s][0] for s in shapes]
    chosen: dict[str, None] = {}
    while len(chosen) < count:
        digits = national_number(rnd)
        if digits not in chosen and is_valid(digits):
            chosen[digits] = None
    out = []
    for digits in chosen:
        shape = rnd.choices(shapes, shape_weights)[0]
        out.append(PasteLine(shape, FRENCH_SHAPES[shape][1](digits)))
    return out
