"""Member policy: TOML rules that turn a match into a queue item, an auto-action or nothing.

Rules are tried in order; the first whose conditions all hold decides. Example::

    default = "ignore"            # what happens when no rule matches

    [[rule]]
    name = "csam-high-confidence"
    types = ["pdq", "md5", "sha256"]
    labels_any = ["csam"]
    min_confidence = 70
    action = "enqueue"
    priority = 0                  # 0 = most urgent … 3

    [[rule]]
    name = "disputed"
    min_false_positive = 2        # members that marked the signal false_positive
    action = "ignore"

    [feedback]                    # what reviewers' decisions tell the coalition
    publish_on_decision = true    # actioned → true_positive, dismissed → false_positive
    publish_seen_on_match = false # a first match of a signal publishes `seen`

Conditions: ``types``, ``labels_any``, ``labels_all``, ``labels_none``,
``min_confidence``, ``max_confidence``, ``min_severity`` (low/medium/high/critical),
``publishers``, ``not_publishers``, ``groups``, ``min_true_positive``,
``max_true_positive``, ``min_false_positive``, ``max_false_positive``,
``min_disputed``, ``max_disputed``, ``min_seen``, ``max_distance``. Opinion counts
are distinct members whose latest opinion on the signal has that verdict (the
member's own included). Actions: ``enqueue`` (with ``priority``), ``auto_action``
(calls the member's hook), ``ignore``. Unknown keys are errors.

``[feedback]`` (all optional, all off by default: publishing is a statement to the
coalition, so a member opts in): ``publish_on_decision`` publishes the
reviewer's verdict on a decided queue item as a signed Opinion (``escalated`` is
not a verdict and publishes nothing); ``publish_seen_on_match``
publishes ``seen`` the first time the member's content matches a signal it has no
opinion on yet; ``on_own_signals`` also does both for the member's own signals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from exchange.core.errors import ConfigError
from exchange.core.settings import parse_toml, refuse_unknown_keys

__all__ = ["Action", "Decision", "FeedbackSettings", "MatchFacts", "Policy", "Rule", "SEVERITIES"]

SEVERITIES = {"unspecified": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


class Action(StrEnum):
    ENQUEUE = "enqueue"
    AUTO_ACTION = "auto_action"
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchFacts:
    """What a rule can look at: the signal, its feedback, and the match."""

    type: str
    labels: frozenset[str]
    confidence: int
    severity: int
    publisher: str
    groups: frozenset[str]
    true_positive: int = 0
    false_positive: int = 0
    disputed: int = 0
    seen: int = 0
    distance: int = 0

    @classmethod
    def of(cls, s: Any, opinions: Mapping[str, int], distance: int = 0) -> MatchFacts:
        """The facts of a match of banked signal ``s`` (a :class:`clients.bank.BankSignal`),
        with the members' latest opinions on it counted by verdict name."""
        return cls(
            type=s.type,
            labels=frozenset(s.labels),
            confidence=s.confidence,
            severity=s.severity,
            publisher=s.publisher,
            groups=frozenset(s.groups),
            true_positive=opinions.get("true_positive", 0),
            false_positive=opinions.get("false_positive", 0),
            disputed=opinions.get("disputed", 0),
            seen=opinions.get("seen", 0),
            distance=distance,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    action: Action
    priority: int
    rule: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    name: str
    action: Action
    priority: int = 2
    types: frozenset[str] | None = None
    labels_any: frozenset[str] | None = None
    labels_all: frozenset[str] = field(default_factory=frozenset)
    labels_none: frozenset[str] = field(default_factory=frozenset)
    min_confidence: int = 0
    max_confidence: int = 100
    min_severity: int = 0
    publishers: frozenset[str] | None = None
    not_publishers: frozenset[str] = field(default_factory=frozenset)
    groups: frozenset[str] | None = None
    min_true_positive: int = 0
    max_true_positive: int | None = None
    min_false_positive: int = 0
    max_false_positive: int | None = None
    min_disputed: int = 0
    max_disputed: int | None = None
    min_seen: int = 0
    max_distance: int | None = None

    def matches(self, f: MatchFacts) -> bool:
        checks = (
            self.types is None or f.type in self.types,
            self.labels_any is None or bool(self.labels_any & f.labels),
            self.labels_all <= f.labels,
            not (self.labels_none & f.labels),
            self.min_confidence <= f.confidence <= self.max_confidence,
            f.severity >= self.min_severity,
            self.publishers is None or f.publisher in self.publishers,
            f.publisher not in self.not_publishers,
            self.groups is None or bool(self.groups & f.groups),
            f.true_positive >= self.min_true_positive,
            self.max_true_positive is None or f.true_positive <= self.max_true_positive,
            f.false_positive >= self.min_false_positive,
            self.max_false_positive is None or f.false_positive <= self.max_false_positive,
            f.disputed >= self.min_disputed,
            self.max_disputed is None or f.disputed <= self.max_disputed,
            f.seen >= self.min_seen,
            self.max_distance is None or f.distance <= self.max_distance,
        )
        return all(checks)


_SETS = ("types", "labels_any", "labels_all", "labels_none", "publishers", "not_publishers", "groups")
_INTS = (
    "priority", "min_confidence", "max_confidence", "min_true_positive", "max_true_positive",
    "min_false_positive", "max_false_positive", "min_disputed", "max_disputed", "min_seen", "max_distance",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackSettings:
    """The ``[feedback]`` table: which verdicts flow back to the coalition by themselves."""

    publish_on_decision: bool = False
    publish_seen_on_match: bool = False
    on_own_signals: bool = False

    @classmethod
    def from_table(cls, raw: Any, source: str) -> FeedbackSettings:
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: [feedback] must be a table")
        known = {"publish_on_decision", "publish_seen_on_match", "on_own_signals"}
        refuse_unknown_keys(raw, known, f"{source}: [feedback]")
        for key, value in raw.items():
            if not isinstance(value, bool):
                raise ConfigError(f"{source}: [feedback] {key} must be true or false")
        return cls(**raw)


def _rule(raw: Mapping[str, Any], where: str) -> Rule:
    refuse_unknown_keys(raw, {"name", "action", "min_severity", *_SETS, *_INTS}, where)
    kwargs: dict[str, Any] = {"name": str(raw.get("name", where))}
    try:
        kwargs["action"] = Action(raw.get("action", "enqueue"))
    except ValueError as exc:
        raise ConfigError(f"{where}: action must be enqueue, auto_action or ignore") from exc
    for key in _SETS:
        if key in raw:
            value = raw[key]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: {key} must be a list of strings")
            kwargs[key] = frozenset(value)
    for key in _INTS:
        if key in raw:
            if not isinstance(raw[key], int) or isinstance(raw[key], bool):
                raise ConfigError(f"{where}: {key} must be an integer")
            kwargs[key] = raw[key]
    if "min_severity" in raw:
        if not isinstance(raw["min_severity"], str) or raw["min_severity"] not in SEVERITIES:
            raise ConfigError(f"{where}: min_severity must be one of {', '.join(SEVERITIES)}")
        kwargs["min_severity"] = SEVERITIES[raw["min_severity"]]
    if not 0 <= kwargs.get("priority", 2) <= 3:
        raise ConfigError(f"{where}: priority is 0 (most urgent) to 3")
    return Rule(**kwargs)


@dataclass(frozen=True, slots=True)
class Policy:
    rules: Sequence[Rule]
    default: Action = Action.IGNORE
    default_priority: int = 3
    feedback: FeedbackSettings = FeedbackSettings()

    @classmethod
    def from_toml(cls, text: str, source: str = "policy") -> Policy:
        data = parse_toml(text, source)
        refuse_unknown_keys(data, {"default", "default_priority", "rule", "feedback"}, source)
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
            raise ConfigError(f"{source}: rules are an array of tables ([[rule]])")
        rules = [_rule(r, f"{source} rule {i + 1}") for i, r in enumerate(raw_rules)]
        try:
            default = Action(data.get("default", "ignore"))
        except ValueError as exc:
            raise ConfigError(f"{source}: default must be enqueue, auto_action or ignore") from exc
        default_priority = data.get("default_priority", 3)
        if not isinstance(default_priority, int) or isinstance(default_priority, bool) or not 0 <= default_priority <= 3:
            raise ConfigError(f"{source}: default_priority is 0 (most urgent) to 3")
        feedback = FeedbackSettings.from_table(data.get("feedback", {}), source)
        return cls(rules=tuple(rules), default=default, default_priority=default_priority, feedback=feedback)

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            return cls.from_toml(Path(path).read_text(), str(path))
        except FileNotFoundError as exc:
            raise ConfigError(f"policy file {path} does not exist") from exc

    def decide(self, facts: MatchFacts) -> Decision:
        for rule in self.rules:
            if rule.matches(facts):
                return Decision(action=rule.action, priority=rule.priority, rule=rule.name)
        return Decision(action=self.default, priority=self.default_priority, rule="default")
