"""What a caller chooses (the Request-URI's user part, the To header, its caller ID) reaches an expression
of the dialplan (``$[…]``) only filtered to digits and ``+`` (issue 17: ``VC_RURI``/``VC_TO`` reached
``$[…]`` unfiltered, where quotes and operators are the expression's own). Checked on
dialplan/extensions.conf, line by line in file order: a variable is tainted by any ``Set`` from a caller's
value or from a tainted variable (whichever extension it is in), and clean again only once it is filtered in
place (``Set(X=${FILTER(0-9+,${X})})``) or set from a filtered value."""

from __future__ import annotations

import re

from engine.settings import PROJECT_ROOT

EXTENSIONS = PROJECT_ROOT / "dialplan" / "extensions.conf"
# What the caller writes: the called number, any SIP header, its caller ID.
_CALLER_SOURCES = re.compile(r"\$\{EXTEN\}|PJSIP_HEADER\(|CALLERID\(|\$\{CALLERID")
_SET = re.compile(r"\bSet\((?:LOCAL\()?(\w+)\)?=(.*)\)")
# Filtered to a set with no quote, space, bracket or expression operator but "-" (digits and "+"; a trunk's
# name from Kamailio's X-VC-Line: lower-case letters, digits, "_" and "-", only ever read between quotes).
_FILTERED = re.compile(r"^\+?\$\{FILTER\((?:0-9|a-z|[-_+])+,.*\}$")
_WORD = re.compile(r"\w+")  # a variable read as ${NAME} or by name (CUT(NAME,…))


def _expressions(line: str) -> list[str]:
    """The text of each ``$[…]`` in ``line`` (brackets nested)."""
    found = []
    start = line.find("$[")
    while start >= 0:
        depth, end = 0, start + 1
        for end in range(start + 1, len(line)):
            depth += {"[": 1, "]": -1}.get(line[end], 0)
            if depth == 0:
                break
        found.append(line[start + 2 : end])
        start = line.find("$[", end)
    return found


def unfiltered_uses(text: str) -> list[str]:
    """Each ``$[…]`` that reads a caller's value, directly or through a tainted variable."""
    tainted: set[str] = set()
    found = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0]  # comments
        for expression in _expressions(line):
            names = set(_WORD.findall(expression)) & tainted
            if names or _CALLER_SOURCES.search(expression):
                found.append(f"line {number}: $[{expression}] ({', '.join(sorted(names)) or 'caller value'})")
        if (assigned := _SET.search(line)) is not None:
            name, value = assigned.group(1), assigned.group(2).strip()
            words = set(_WORD.findall(value))
            if _FILTERED.match(value):
                if name in words:  # the variable filtered in place: clean from here on
                    tainted.discard(name)
            elif _CALLER_SOURCES.search(value) or words & tainted:
                tainted.add(name)
            # Any other value (empty, a constant) may be another extension's branch: taint stays.
    return found


def test_no_caller_value_reaches_a_dialplan_expression_unfiltered() -> None:
    text = EXTENSIONS.read_text()
    assert "VC_TO" in text and "VC_RURI" in text  # the values the issue names are still there
    assert unfiltered_uses(text) == []


def test_the_check_finds_an_unfiltered_value() -> None:
    text = EXTENSIONS.read_text()
    # Without the filters (the code the issue found), both routing expressions are reported.
    unfiltered = text.replace("${FILTER(0-9+,${VC_TO})}", "${VC_TO}").replace(
        "${FILTER(0-9,${EXTEN})}", "${EXTEN}"
    )
    assert unfiltered != text
    uses = unfiltered_uses(unfiltered)
    assert any("VC_TO" in use for use in uses), uses
    assert any("VC_RURI" in use for use in uses), uses
