"""A carrier that misroutes (engine/domain/quality.py): its answer rate and answered-call length against
the other trunks and its own history."""

from __future__ import annotations

from engine.domain.quality import CallQuality, Figures, QualityRules, Verdict, judge

RULES = QualityRules(alarm_ratio=0.5, cutoff_ratio=0.2, min_calls=20)


def test_a_trunk_far_below_the_others_is_alarmed_then_cut() -> None:
    good = Figures(100, 60, 60 * 30.0)  # 60 % answered, 30 s per answered call
    assert judge({"a": good, "b": Figures(100, 25, 25 * 30.0)}, {}, RULES)["b"][0] is Verdict.alarm
    verdict, reason = judge({"a": good, "b": Figures(100, 5, 5 * 30.0)}, {}, RULES)["b"]
    assert verdict is Verdict.cut and "answer rate" in reason
    # Answered, but every call cut after 2 s of silence: the length gives it away.
    verdict, reason = judge({"a": good, "b": Figures(100, 60, 60 * 2.0)}, {}, RULES)["b"]
    assert verdict is Verdict.cut and "length" in reason
    assert judge({"a": good, "b": good}, {}, RULES) == {"a": (Verdict.ok, ""), "b": (Verdict.ok, "")}


def test_too_few_calls_are_not_judged_and_its_own_history_is_a_reference() -> None:
    assert judge({"a": Figures(100, 60, 1800.0), "b": Figures(10, 0, 0.0)}, {}, RULES)["b"][0] is Verdict.ok
    # Alone (no other trunk), against its own history.
    history = {"solo": Figures(1000, 600, 600 * 30.0)}
    assert judge({"solo": Figures(50, 5, 150.0)}, history, RULES)["solo"][0] is Verdict.cut


def test_recent_calls_leave_the_window() -> None:
    quality = CallQuality(window_s=60)
    for t in range(10):
        quality.record(float(t), answered=True, talk_s=10.0)
    assert quality.recent(10.0) == Figures(10, 10, 100.0)
    assert quality.recent(100.0) == Figures(0, 0, 0.0)
    assert quality.history == Figures(10, 10, 100.0)
