"""A number said in French as the list of prompt files that say it (num_0 … num_99, num_100, num_cents,
num_1000 in sounds/fr), e.g. the reference the recording IVR announces: 232 → num_2 num_100 num_32.

The same rule as sounds/generate.py's ``number_prompts`` (which checks every file it needs exists).
"""

from __future__ import annotations

from typing import Final

MAX_SAYABLE: Final = 999_999


def number_prompts(n: int) -> list[str]:
    """Prompt names that say ``n`` (0 ≤ n ≤ 999 999) in order, e.g. 1232 → num_1000 num_2 num_100 num_32.

    0-99 are whole words (vingt et un, soixante et onze, quatre-vingts). "cents" only when nothing
    follows (deux cents, but deux cent trente and deux cent mille); "mille" is invariable and has no
    "un" before it.
    """
    if not 0 <= n <= MAX_SAYABLE:
        raise ValueError(f"cannot say {n}: only 0 to {MAX_SAYABLE}")
    if n < 100:
        return [f"num_{n}"]
    thousands, rest = divmod(n, 1000)
    names: list[str] = []
    if thousands == 1:
        names.append("num_1000")
    elif thousands > 1:
        names += [*_below_1000(thousands, before_mille=True), "num_1000"]
    if rest:
        names += _below_1000(rest, before_mille=False)
    return names


def _below_1000(value: int, *, before_mille: bool) -> list[str]:
    hundreds, rest = divmod(value, 100)
    names: list[str] = []
    if hundreds == 1:
        names.append("num_100")
    elif hundreds > 1:
        plural = rest == 0 and not before_mille
        names += [f"num_{hundreds}", "num_cents" if plural else "num_100"]
    if rest:
        names.append(f"num_{rest}")
    return names
