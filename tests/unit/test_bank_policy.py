"""Policy settings the member side added: [feedback] and the new rule conditions."""

from __future__ import annotations

import pytest

from clients.policy import Action, FeedbackSettings, MatchFacts, Policy
from exchange.core.errors import ConfigError


def _facts(**kw: object) -> MatchFacts:
    base: dict[str, object] = dict(type="pdq", labels=frozenset({"csam"}), confidence=80, severity=3,
                                   publisher="alice", groups=frozenset({"g"}))
    base.update(kw)
    return MatchFacts(**base)  # type: ignore[arg-type]


def test_feedback_table_is_opt_in_and_strict() -> None:
    assert Policy(rules=()).feedback == FeedbackSettings()
    assert not FeedbackSettings().publish_on_decision and not FeedbackSettings().publish_seen_on_match
    p = Policy.from_toml("[feedback]\npublish_on_decision = true\npublish_seen_on_match = true\n")
    assert p.feedback.publish_on_decision and p.feedback.publish_seen_on_match and not p.feedback.on_own_signals
    with pytest.raises(ConfigError, match="unknown key"):
        Policy.from_toml("[feedback]\npublish = true\n")
    with pytest.raises(ConfigError, match="true or false"):
        Policy.from_toml('[feedback]\npublish_on_decision = "yes"\n')


def test_new_conditions() -> None:
    p = Policy.from_toml(
        '[[rule]]\nname = "no-spam"\nlabels_none = ["spam"]\nnot_publishers = ["mallory"]\n'
        "max_disputed = 0\nmax_true_positive = 5\naction = \"enqueue\"\npriority = 0\n"
        '[[rule]]\nname = "seen-a-lot"\nmin_seen = 3\nmin_disputed = 1\naction = "auto_action"\n'
    )
    assert p.decide(_facts()).rule == "no-spam"
    assert p.decide(_facts(labels=frozenset({"csam", "spam"}))).action is Action.IGNORE
    assert p.decide(_facts(publisher="mallory")).action is Action.IGNORE
    assert p.decide(_facts(disputed=1, seen=3)).rule == "seen-a-lot"
    assert p.decide(_facts(true_positive=6)).action is Action.IGNORE
