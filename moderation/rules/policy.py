"""The versioned policy: which rules run, what each looks for, how severe a hit is.

A policy is a JSON (or YAML) document; the repository ships ``moderation/policy/default.json``
and admins may load another at run time. Loading validates everything up front (unknown
categories, bad regular expressions, auto actions on non-critical rules...) and reports every
problem with its place in the document, so a broken policy never reaches the pipeline.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Category = Literal["off_platform_contact", "payment_bypass", "abuse", "personal_data", "custom"]
Severity = Literal["low", "medium", "high", "critical"]
AutoAction = Literal["mute", "suspend_pending_review", "end_class"]
# What a hit does in the live class at once: nothing, a notice to the speaker, or a notice plus
# the automated restriction (a mute pending review). Unset: "nudge" for contact and payment rules.
LiveAction = Literal["off", "nudge", "nudge_restrict"]
Source = Literal["speech", "screen"]
_ALL_SOURCES: tuple[Source, ...] = ("speech", "screen")
RuleType = Literal["phone", "email", "phrases", "keywords", "profanity", "national_id", "bank_card"]

CATEGORIES: tuple[str, ...] = ("off_platform_contact", "payment_bypass", "abuse", "personal_data", "custom")
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")

# The policy document stays beside the domain (``moderation/policy/``), outside the engine package.
DEFAULT_POLICY_PATH = Path(__file__).resolve().parent.parent / "policy" / "default.json"

# Shorthands usable in every pattern: written or spoken punctuation of addresses and links.
PLACEHOLDERS = {
    "{DOT}": r"\s*(?:\.|\bdot\b)\s*",
    "{AT}": r"\s*(?:@|\bat\b)\s*",
    "{SLASH}": r"\s*(?:/|\bslash\b)\s*",
    "{SEP}": r"[\s,.\-_:;'\"!?]*",
}


class PolicyError(ValueError):
    """The policy document is not valid; ``detail`` lists every problem found.

    A plain ``ValueError``: the rules know nothing of HTTP. The domain service turns it into
    its 422 ``Unprocessable`` when an admin sends a policy.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def expand(pattern: str) -> str:
    for key, value in PLACEHOLDERS.items():
        pattern = pattern.replace(key, value)
    return pattern


def compile_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(expand(pattern), re.IGNORECASE)


def _check_patterns(values: list[str]) -> list[str]:
    for i, p in enumerate(values):
        try:
            compile_pattern(p)
        except re.error as exc:
            raise ValueError(f"pattern {i} ({p!r}) is not a valid regular expression: {exc}") from None
    return values


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PhraseGroup(_Strict):
    """Patterns that hit alone, or only with one of the ``near`` cues within ``window_words``."""

    patterns: list[str] = Field(min_length=1)
    near: list[str] = Field(default_factory=list)
    window_words: int = Field(default=8, ge=1, le=60)
    confidence: float = Field(default=0.8, ge=0.0, le=1.0)

    _p = field_validator("patterns", "near")(_check_patterns)


class PhrasesParams(_Strict):
    groups: list[PhraseGroup] = Field(min_length=1)


class KeywordsParams(_Strict):
    """Plain words or phrases (matched as whole words; CJK as substrings) and raw regexes."""

    keywords: list[str] = Field(default_factory=list)
    regexes: list[str] = Field(default_factory=list)
    confidence: float = Field(default=0.9, ge=0.0, le=1.0)

    _r = field_validator("regexes")(_check_patterns)

    @model_validator(mode="after")
    def _not_empty(self) -> KeywordsParams:
        if not self.keywords and not self.regexes:
            raise ValueError("a keywords rule needs at least one keyword or regex")
        if any(not k.strip() for k in self.keywords):
            raise ValueError("keywords must not be blank")
        return self


class PhoneParams(_Strict):
    min_digits: int = Field(default=7, ge=5, le=20)
    max_digits: int = Field(default=15, ge=5, le=20)
    cues: list[str] = Field(min_length=1)
    weak_cues: list[str] = Field(default_factory=list)
    window_words: int = Field(default=8, ge=1, le=60)
    regions: list[str] = Field(default_factory=lambda: ["US", "CN", "GB", "IN", "AU", "CA"])
    confidence: float = Field(default=0.85, ge=0.0, le=1.0)
    # Added to ``confidence`` when the digits make a valid number in one of ``regions``.
    valid_bonus: float = Field(default=0.1, ge=0.0, le=0.5)
    # Digit strings that are a phone number with no cue at all (a mainland mobile, 1[3-9] and
    # nine more digits), when they also make a valid number; hit with ``alone_confidence``.
    alone_patterns: list[str] = Field(default_factory=list)
    alone_confidence: float = Field(default=0.7, ge=0.0, le=1.0)

    _c = field_validator("cues", "weak_cues", "alone_patterns")(_check_patterns)

    @model_validator(mode="after")
    def _range(self) -> PhoneParams:
        if self.min_digits > self.max_digits:
            raise ValueError("min_digits is larger than max_digits")
        return self


class EmailParams(_Strict):
    tlds: list[str] = Field(min_length=1)
    cues: list[str] = Field(default_factory=list)
    window_words: int = Field(default=8, ge=1, le=60)
    confidence: float = Field(default=0.95, ge=0.0, le=1.0)
    cue_confidence: float = Field(default=0.6, ge=0.0, le=1.0)

    _c = field_validator("cues")(_check_patterns)


class IdScheme(_Strict):
    """A ``python-stdnum`` module (e.g. ``cn.ric``) that validates the number, its digit counts,
    and whether a cue word must be near (for checksums that random digits pass often)."""

    module: str
    lengths: list[int] = Field(min_length=1)
    needs_cue: bool = False
    trailing_x: bool = False
    label: str = ""
    # Cues for this scheme only (e.g. "social security" for SSN); empty: the rule's cues.
    cues: list[str] = Field(default_factory=list)

    _c = field_validator("cues")(_check_patterns)

    @field_validator("module")
    @classmethod
    def _importable(cls, v: str) -> str:
        try:
            mod = importlib.import_module(f"stdnum.{v}")
        except ImportError:
            raise ValueError(f"stdnum has no module {v!r}") from None
        if not hasattr(mod, "is_valid"):
            raise ValueError(f"stdnum.{v} has no is_valid()")
        return v


class NationalIdParams(_Strict):
    schemes: list[IdScheme] = Field(min_length=1)
    cues: list[str] = Field(default_factory=list)
    window_words: int = Field(default=10, ge=1, le=60)
    confidence: float = Field(default=0.9, ge=0.0, le=1.0)

    _c = field_validator("cues")(_check_patterns)


class BankCardParams(_Strict):
    cues: list[str] = Field(default_factory=list)
    window_words: int = Field(default=10, ge=1, le=60)
    confidence: float = Field(default=0.8, ge=0.0, le=1.0)
    cue_confidence: float = Field(default=0.95, ge=0.0, le=1.0)

    _c = field_validator("cues")(_check_patterns)


class ProfanityParams(_Strict):
    """better-profanity's shipped list (``builtin``) minus ``allow`` plus ``extra`` words."""

    builtin: bool = True
    allow: list[str] = Field(default_factory=list)
    extra: list[str] = Field(default_factory=list)
    confidence: float = Field(default=0.8, ge=0.0, le=1.0)


PARAMS_BY_TYPE: dict[str, type[_Strict]] = {
    "phone": PhoneParams,
    "email": EmailParams,
    "phrases": PhrasesParams,
    "keywords": KeywordsParams,
    "profanity": ProfanityParams,
    "national_id": NationalIdParams,
    "bank_card": BankCardParams,
}


class RuleSpec(_Strict):
    """One rule as written in the policy document."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$", max_length=80)
    version: int = Field(ge=1)
    category: Category
    severity: Severity
    type: RuleType
    description: str = ""
    enabled: bool = True
    auto_action: AutoAction | None = None
    live_action: LiveAction | None = None
    locales: list[str] = Field(default_factory=lambda: ["*"])
    sources: list[Source] = Field(default_factory=lambda: list(_ALL_SOURCES))
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> RuleSpec:
        if self.auto_action is not None and self.severity != "critical":
            raise ValueError(f"auto_action {self.auto_action!r} is only allowed on critical rules")
        if self.category == "custom" and self.type not in ("keywords", "phrases"):
            raise ValueError("custom rules are keyword or phrase lists")
        PARAMS_BY_TYPE[self.type].model_validate(self.params)
        return self


class PolicyDoc(_Strict):
    version: str = Field(min_length=1, max_length=64)
    description: str = ""
    # Hits below this confidence never act in the live class (they still go to review).
    live_min_confidence: float = Field(default=0.8, ge=0.0, le=1.0)
    rules: list[RuleSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> PolicyDoc:
        seen: set[str] = set()
        for r in self.rules:
            if r.id in seen:
                raise ValueError(f"rule id {r.id!r} appears twice")
            seen.add(r.id)
        return self


@dataclass(frozen=True)
class Rule:
    """A validated rule with its typed params."""

    spec: RuleSpec
    params: Any

    @property
    def id(self) -> str:
        return self.spec.id

    def applies(self, source: str, locale: str | None) -> bool:
        if not self.spec.enabled or source not in self.spec.sources:
            return False
        return locale is None or "*" in self.spec.locales or locale in self.spec.locales


@dataclass(frozen=True)
class Policy:
    """A loaded, validated policy. ``digest`` identifies its exact content (store it with flags)."""

    version: str
    rules: tuple[Rule, ...]
    digest: str
    source: str = "dict"
    live_min_confidence: float = 0.8
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "dict") -> Policy:
        """Validate a policy document; ``PolicyError`` lists every problem with its location."""
        if not isinstance(data, dict):
            raise PolicyError(f"policy {source}: the document must be an object with 'version' and 'rules'")
        try:
            doc = PolicyDoc.model_validate(data)
        except ValidationError as exc:
            raise PolicyError(f"policy {source} is invalid: {_describe(exc, data)}") from None
        rules = tuple(Rule(spec, PARAMS_BY_TYPE[spec.type].model_validate(spec.params)) for spec in doc.rules)
        canonical = json.dumps(doc.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        return cls(version=doc.version, rules=rules, digest=digest, source=source,
                   live_min_confidence=doc.live_min_confidence)

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """Read a policy from a ``.json`` (or, when PyYAML is installed, ``.yaml``) file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PolicyError(f"policy file {p} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"policy file {p} cannot be read: {exc}") from None
        if p.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise PolicyError("YAML policies need PyYAML; use JSON") from None
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise PolicyError(f"policy file {p} is not valid YAML: {exc}") from None
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise PolicyError(f"policy file {p} is not valid JSON: {exc}") from None
        return cls.from_dict(data, source=str(p))

    @classmethod
    def default(cls) -> Policy:
        """The policy shipped in the repository (``moderation/policy/default.json``)."""
        return _default_policy()

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


_DEFAULT: Policy | None = None


def _default_policy() -> Policy:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Policy.load(DEFAULT_POLICY_PATH)
    return _DEFAULT


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    parts = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = ""
        # Name rules by id, not only by index, so an admin finds them in a long document.
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            rules = data.get("rules")
            rid = None
            if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
                rid = rules[loc[1]].get("id")
            where = f"rules[{loc[1]}]" + (f" ({rid})" if rid else "")
            rest = ".".join(str(x) for x in loc[2:])
            where += f".{rest}" if rest else ""
        else:
            where = ".".join(str(x) for x in loc) or "document"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)
