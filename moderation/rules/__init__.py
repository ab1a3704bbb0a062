"""The moderation rules engine: text in, hits with evidence out. Knows nothing of the database or HTTP.

- ``policy``: the versioned policy document, validated up front (``moderation/policy/*.json``);
- ``normalize``: text normalisation per language (case, width, spoken numbers in English and
  Mandarin, Traditional to Simplified), keeping each character's raw position;
- ``detectors``: what each rule type looks for in one normalised text;
- ``evaluation``: spans of one slice (with the speaker's carried tail) to ordered hits.
"""

from moderation.rules.detectors import DETECTORS, Doc, Match, card_network
from moderation.rules.evaluation import (
    CarryState,
    Hit,
    SpanSource,
    TextSpan,
    evaluate,
    evaluate_text,
    hits_summary,
)
from moderation.rules.normalize import NormText, normalise
from moderation.rules.policy import (
    CATEGORIES,
    DEFAULT_POLICY_PATH,
    SEVERITIES,
    Policy,
    PolicyError,
    Rule,
)

__all__ = [
    "CATEGORIES",
    "DEFAULT_POLICY_PATH",
    "DETECTORS",
    "SEVERITIES",
    "CarryState",
    "Doc",
    "Hit",
    "Match",
    "NormText",
    "Policy",
    "PolicyError",
    "Rule",
    "SpanSource",
    "TextSpan",
    "card_network",
    "evaluate",
    "evaluate_text",
    "hits_summary",
    "normalise",
]
