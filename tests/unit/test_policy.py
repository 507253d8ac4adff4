"""Member policy (clients.policy): TOML rules, first match wins, strict parsing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from clients.policy import SEVERITIES, Action, Decision, MatchFacts, Policy
from exchange.core.errors import ConfigError

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "policies"

FACTS = MatchFacts(
    type="pdq",
    labels=frozenset({"csam", "src:hotline"}),
    confidence=80,
    severity=SEVERITIES["high"],
    publisher="alice",
    groups=frozenset({"all-members"}),
    true_positive=1,
    false_positive=0,
    distance=10,
)


def decide(toml: str, facts: MatchFacts = FACTS) -> Decision:
    return Policy.from_toml(toml).decide(facts)


def one_rule(condition: str) -> str:
    return f'default = "ignore"\ndefault_priority = 3\n\n[[rule]]\nname = "r"\n{condition}\naction = "enqueue"\npriority = 1\n'


# -- ordering and defaults ---------------------------------------------------------------


def test_first_matching_rule_wins() -> None:
    toml = """
[[rule]]
name = "first"
labels_any = ["csam"]
action = "enqueue"
priority = 0

[[rule]]
name = "second"
types = ["pdq"]
action = "auto_action"
priority = 3
"""
    assert decide(toml) == Decision(action=Action.ENQUEUE, priority=0, rule="first")
    # reordered: the auto_action rule now comes first
    reordered = """
[[rule]]
name = "second"
types = ["pdq"]
action = "auto_action"
priority = 3

[[rule]]
name = "first"
labels_any = ["csam"]
action = "enqueue"
priority = 0
"""
    assert decide(reordered) == Decision(action=Action.AUTO_ACTION, priority=3, rule="second")


def test_non_matching_rules_are_skipped() -> None:
    toml = """
[[rule]]
name = "not-me"
labels_any = ["spam"]
action = "ignore"

[[rule]]
name = "me"
labels_any = ["csam"]
action = "enqueue"
priority = 0
"""
    assert decide(toml).rule == "me"


def test_default_when_nothing_matches() -> None:
    toml = 'default = "enqueue"\ndefault_priority = 1\n[[rule]]\nlabels_any = ["spam"]\naction = "ignore"\n'
    assert decide(toml) == Decision(action=Action.ENQUEUE, priority=1, rule="default")


def test_empty_policy_ignores_everything() -> None:
    assert decide("") == Decision(action=Action.IGNORE, priority=3, rule="default")


def test_rule_defaults() -> None:
    policy = Policy.from_toml("[[rule]]\n")
    (rule,) = policy.rules
    assert rule.action is Action.ENQUEUE and rule.priority == 2
    assert rule.name == "policy rule 1"
    assert policy.decide(FACTS) == Decision(action=Action.ENQUEUE, priority=2, rule="policy rule 1")


# -- each condition ----------------------------------------------------------------------

CONDITIONS = [
    ('types = ["pdq", "md5"]', {}, {"type": "url"}),
    ('labels_any = ["ncii", "csam"]', {}, {"labels": frozenset({"spam"})}),
    ('labels_any = ["csam"]', {"labels": frozenset({"csam"})}, {"labels": frozenset()}),
    ('labels_all = ["csam", "src:hotline"]', {}, {"labels": frozenset({"csam"})}),
    ("min_confidence = 80", {"confidence": 80}, {"confidence": 79}),
    ("max_confidence = 40", {"confidence": 40}, {"confidence": 41}),
    ('min_severity = "high"', {"severity": SEVERITIES["critical"]}, {"severity": SEVERITIES["medium"]}),
    ('min_severity = "low"', {"severity": SEVERITIES["low"]}, {"severity": SEVERITIES["unspecified"]}),
    ('publishers = ["alice", "carol"]', {}, {"publisher": "bob"}),
    ('groups = ["ncii-response", "all-members"]', {}, {"groups": frozenset({"other"})}),
    ("min_true_positive = 1", {"true_positive": 1}, {"true_positive": 0}),
    ("min_false_positive = 2", {"false_positive": 2}, {"false_positive": 1}),
    ("max_false_positive = 1", {"false_positive": 1}, {"false_positive": 2}),
    ("max_distance = 10", {"distance": 10}, {"distance": 11}),
    ("max_distance = 0", {"distance": 0}, {"distance": 1}),
]


@pytest.mark.parametrize(("condition", "yes", "no"), CONDITIONS, ids=[c[0] for c in CONDITIONS])
def test_condition(condition: str, yes: dict[str, object], no: dict[str, object]) -> None:
    policy = Policy.from_toml(one_rule(condition))
    assert policy.decide(replace(FACTS, **yes)) == Decision(action=Action.ENQUEUE, priority=1, rule="r")  # type: ignore[arg-type]
    assert policy.decide(replace(FACTS, **no)) == Decision(action=Action.IGNORE, priority=3, rule="default")  # type: ignore[arg-type]


def test_all_conditions_of_a_rule_must_hold() -> None:
    policy = Policy.from_toml(one_rule('labels_any = ["csam"]\nmin_confidence = 90'))
    assert policy.decide(FACTS).rule == "default"
    assert policy.decide(replace(FACTS, confidence=95)).rule == "r"
    assert policy.decide(replace(FACTS, confidence=95, labels=frozenset({"spam"}))).rule == "default"


# -- strict parsing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "toml",
    [
        pytest.param('defualt = "ignore"', id="unknown-top-level-key"),
        pytest.param("[settings]\nx = 1", id="unknown-top-level-table"),
        pytest.param('[[rule]]\nlabel_any = ["csam"]', id="unknown-rule-key"),
        pytest.param('[[rule]]\nname = "x"\nmin_confidance = 1', id="misspelt-condition"),
        pytest.param('[[rule]]\naction = "delete"', id="bad-action"),
        pytest.param('[[rule]]\naction = "Enqueue"', id="action-wrong-case"),
        pytest.param("[[rule]]\naction = 1", id="action-not-a-string"),
        pytest.param('default = "delete"', id="bad-default"),
        pytest.param("[[rule]]\npriority = 4", id="priority-too-high"),
        pytest.param("[[rule]]\npriority = -1", id="priority-negative"),
        pytest.param('[[rule]]\npriority = "high"', id="priority-string"),
        pytest.param("[[rule]]\npriority = true", id="priority-bool"),
        pytest.param("[[rule]]\npriority = 1.5", id="priority-float"),
        pytest.param("default_priority = 7", id="default-priority-too-high"),
        pytest.param("default_priority = -1", id="default-priority-negative"),
        pytest.param('default_priority = "x"', id="default-priority-string"),
        pytest.param("default_priority = true", id="default-priority-bool"),
        pytest.param('[[rule]]\ntypes = "pdq"', id="set-not-a-list"),
        pytest.param("[[rule]]\nlabels_any = [1]", id="set-of-non-strings"),
        pytest.param('[[rule]]\nmin_confidence = "80"', id="int-as-string"),
        pytest.param("[[rule]]\nmax_distance = false", id="int-as-bool"),
        pytest.param('[[rule]]\nmin_severity = "extreme"', id="bad-severity"),
        pytest.param("[[rule]]\nmin_severity = 3", id="severity-number"),
        pytest.param('[[rule]]\nmin_severity = ["high"]', id="severity-list"),
        pytest.param("rule = 5", id="rule-not-a-table-array"),
        pytest.param('[rule]\nname = "x"', id="rule-single-table"),
        pytest.param('rule = ["x"]', id="rule-array-of-strings"),
        pytest.param("this is not toml", id="invalid-toml"),
        pytest.param('default = "ignore"\ndefault = "enqueue"', id="duplicate-key"),
    ],
)
def test_config_errors(toml: str) -> None:
    with pytest.raises(ConfigError):
        Policy.from_toml(toml)


def test_error_names_the_source_and_rule() -> None:
    with pytest.raises(ConfigError) as info:
        Policy.from_toml('[[rule]]\nname = "ok"\n[[rule]]\nlabel_any = ["x"]', source="mine.toml")
    assert "mine.toml rule 2" in str(info.value)
    assert "label_any" in str(info.value)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Policy.load(tmp_path / "nope.toml")


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(one_rule('publishers = ["alice"]'))
    assert Policy.load(path).decide(FACTS).rule == "r"


# -- the seed policies -------------------------------------------------------------------

SEED_FILES = sorted(SEEDS.glob("*.toml"))


def test_there_are_seed_policies() -> None:
    assert {p.stem for p in SEED_FILES} >= {"lumen", "northwind", "parcel"}


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.stem)
def test_seed_policy_loads(path: Path) -> None:
    policy = Policy.load(path)
    assert policy.rules
    assert all(0 <= r.priority <= 3 for r in policy.rules)


def facts(**changes: object) -> MatchFacts:
    base = MatchFacts(
        type="pdq", labels=frozenset(), confidence=50, severity=0, publisher="bob", groups=frozenset({"all-members"})
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seed", "match", "action", "priority"),
    [
        ("lumen", facts(labels=frozenset({"ncii"}), confidence=90), Action.AUTO_ACTION, 0),
        ("lumen", facts(labels=frozenset({"ncii"}), confidence=50), Action.ENQUEUE, 2),
        ("lumen", facts(labels=frozenset({"csam"}), false_positive=2), Action.IGNORE, 2),
        ("lumen", facts(labels=frozenset({"terrorism"}), severity=SEVERITIES["critical"]), Action.ENQUEUE, 1),
        ("northwind", facts(labels=frozenset({"csam"}), confidence=70), Action.ENQUEUE, 0),
        ("northwind", facts(labels=frozenset({"sextortion"}), confidence=10), Action.ENQUEUE, 1),
        ("northwind", facts(labels=frozenset({"spam"}), confidence=30), Action.IGNORE, 2),
        ("northwind", facts(labels=frozenset({"spam"}), confidence=60), Action.ENQUEUE, 3),
        ("parcel", facts(labels=frozenset({"csam"}), confidence=80), Action.ENQUEUE, 0),
        ("parcel", facts(labels=frozenset({"csam"}), confidence=79), Action.IGNORE, 3),
        ("parcel", facts(labels=frozenset({"trafficking"})), Action.ENQUEUE, 1),
    ],
)
def test_seed_policy_decisions(seed: str, match: MatchFacts, action: Action, priority: int) -> None:
    decision = Policy.load(SEEDS / f"{seed}.toml").decide(match)
    assert (decision.action, decision.priority) == (action, priority)
