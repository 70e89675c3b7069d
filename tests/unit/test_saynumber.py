"""French numbers as prompt files: the IVR's copy of the rule agrees with sounds/generate.py, and every
file it names exists in sounds/fr in the three formats Asterisk plays."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from engine.domain.saynumber import MAX_SAYABLE, number_prompts
from engine.settings import PROJECT_ROOT

SOUNDS = PROJECT_ROOT / "sounds"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sounds_generate", SOUNDS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


GENERATE = _generator()


@pytest.mark.parametrize(
    ("n", "names"),
    [
        (0, ["num_0"]),
        (1, ["num_1"]),
        (21, ["num_21"]),  # "vingt et un" is one file
        (32, ["num_32"]),
        (71, ["num_71"]),
        (80, ["num_80"]),
        (99, ["num_99"]),
        (100, ["num_100"]),  # "cent", never "un cent"
        (101, ["num_100", "num_1"]),
        (200, ["num_2", "num_cents"]),  # "deux cents"
        (232, ["num_2", "num_100", "num_32"]),  # "deux cent trente-deux"
        (1000, ["num_1000"]),  # "mille", never "un mille"
        (1001, ["num_1000", "num_1"]),
        (1232, ["num_1000", "num_2", "num_100", "num_32"]),
        (2080, ["num_2", "num_1000", "num_80"]),
        (200_000, ["num_2", "num_100", "num_1000"]),  # "deux cent mille": no s before mille
        (200_200, ["num_2", "num_100", "num_1000", "num_2", "num_cents"]),
        (999_999, ["num_9", "num_100", "num_99", "num_1000", "num_9", "num_100", "num_99"]),
    ],
)
def test_examples(n: int, names: list[str]) -> None:
    assert number_prompts(n) == names


@pytest.mark.parametrize("n", [-1, MAX_SAYABLE + 1, 10**9])
def test_out_of_range(n: int) -> None:
    with pytest.raises(ValueError, match="cannot say"):
        number_prompts(n)


def test_the_prompt_generator_uses_the_engines_rule() -> None:
    # One rule: the files the generator makes are exactly the ones the IVR asks for.
    assert GENERATE.number_prompts is number_prompts


def test_every_prompt_a_reference_needs_exists() -> None:
    needed = {name for n in range(2000) for name in number_prompts(n)}
    needed |= {name for n in range(2000, MAX_SAYABLE + 1, 997) for name in number_prompts(n)}
    missing = sorted(
        f"{name}.{ext}"
        for name in needed
        for ext in ("wav", "alaw", "ulaw")
        if not (SOUNDS / "fr" / f"{name}.{ext}").is_file()
    )
    assert missing == []
    assert needed == set(GENERATE.number_texts())  # every number file is used, none is missing
