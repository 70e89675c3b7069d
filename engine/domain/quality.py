"""A carrier that misroutes: it answers with callee-side codes (every call 404 or 480), or answers calls
that carry nothing (2 s of silence, then a hang-up). Its breaker never opens — those are not trunk-side
failures — so each trunk's answer-seizure ratio (answered calls among the calls that reached the callee's
side) and average answered-call length are compared with the other trunks' and with the trunk's own
history. Far below raises an alarm; further below takes the trunk out of routing like an open breaker.
Time is passed in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Verdict(StrEnum):
    ok = "ok"
    alarm = "alarm"  # degraded in /healthz, a metric and a log line; still routed
    cut = "cut"  # out of routing, like an open breaker


@dataclass(frozen=True, slots=True)
class Figures:
    calls: int  # calls that reached the callee's side
    answered: int
    talk_s: float  # total answered time

    @property
    def asr(self) -> float:
        return self.answered / self.calls if self.calls else 0.0

    @property
    def acl_s(self) -> float:
        return self.talk_s / self.answered if self.answered else 0.0

    def __add__(self, other: Figures) -> Figures:
        return Figures(self.calls + other.calls, self.answered + other.answered, self.talk_s + other.talk_s)


NONE = Figures(0, 0, 0.0)


@dataclass
class CallQuality:
    """One trunk's recent calls (``window_s``) and its history (every call since the engine started)."""

    window_s: float = 600.0
    _recent: deque[tuple[float, bool, float]] = field(default_factory=deque)
    history: Figures = NONE

    def record(self, now: float, *, answered: bool, talk_s: float) -> None:
        self._recent.append((now, answered, talk_s if answered else 0.0))
        self.history = self.history + Figures(1, int(answered), talk_s if answered else 0.0)
        self._trim(now)

    def recent(self, now: float) -> Figures:
        self._trim(now)
        return Figures(
            len(self._recent),
            sum(1 for _, answered, _ in self._recent if answered),
            sum(talk for _, _, talk in self._recent),
        )

    def _trim(self, now: float) -> None:
        horizon = now - self.window_s
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()


@dataclass(frozen=True, slots=True)
class QualityRules:
    alarm_ratio: float = 0.5
    cutoff_ratio: float = 0.2
    min_calls: int = 50


def judge(
    recent: Mapping[str, Figures], history: Mapping[str, Figures], rules: QualityRules
) -> dict[str, tuple[Verdict, str]]:
    """Each trunk's verdict and its reason, from its recent figures against a reference: the other trunks'
    recent figures taken together and, when better known, the trunk's own history."""
    verdicts: dict[str, tuple[Verdict, str]] = {}
    for name, mine in recent.items():
        if mine.calls < rules.min_calls:
            verdicts[name] = (Verdict.ok, "")
            continue
        others = sum((f for n, f in recent.items() if n != name), NONE)
        references = [f for f in (others, history.get(name, NONE)) if f.calls >= rules.min_calls]
        verdict, reason = Verdict.ok, ""
        for reference in references:
            for label, value, expected in (
                ("answer rate", mine.asr, reference.asr),
                ("answered call length", mine.acl_s, reference.acl_s),
            ):
                if expected <= 0:
                    continue
                if value < rules.cutoff_ratio * expected:
                    verdict, reason = Verdict.cut, f"{label} {value:.2f} against {expected:.2f}"
                elif value < rules.alarm_ratio * expected and verdict is Verdict.ok:
                    verdict, reason = Verdict.alarm, f"{label} {value:.2f} against {expected:.2f}"
        verdicts[name] = (verdict, reason)
    return verdicts
