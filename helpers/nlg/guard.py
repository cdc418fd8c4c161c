"""The guard: check a reason before it reaches the shopper."""
from __future__ import annotations

import pandas as pd

from .claims import Lexicon, extract_claims
from .explainers import TemplateExplainer, _one_id, profile_map

# ============================================================================ 6. guard
class FaithfulnessGuard:
    """Checks a reason against what the shop states about the item and what the profile says
    about the user: every aspect claim must be a stated fact of the item at that band, colour /
    pattern / brand claims must match the item, and at least one claim must be an aspect in the
    user's inferred profile (or the item's brand). ``choose`` returns the first of several
    candidates that passes, or the template's reason (marked as a fallback)."""

    def __init__(self, facts: dict[int, dict], profile: pd.DataFrame, lex: Lexicon,
                 fallback: TemplateExplainer, require_personal: bool = True):
        self.facts, self.profile, self.lex = facts, profile_map(profile), lex
        self.fallback, self.require_personal = fallback, require_personal

    def problems(self, reason: str, user: int, item: int) -> list[str]:
        f = self.facts.get(_one_id(item, "item"))
        if f is None:
            return [f"unknown item {item}"]
        claims = extract_claims(reason, self.lex)
        out = []
        for c in claims:
            if c.kind == "aspect":
                stated = f["aspects"].get(c.name)
                if stated is None:
                    out.append(f"{c.name}: not a stated fact of this item")
                elif c.level is not None and c.level != stated:
                    out.append(f"{c.name}: called {c.level}, the shop says {stated}")
            elif c.kind in ("colour", "pattern", "brand") and f.get(c.kind) != c.name:
                out.append(f"{c.kind} {c.name}: the item's is {f.get(c.kind) or 'not stated'}")
        wanted = set(self.profile.get(_one_id(user, "user"), []))
        personal = any(c.kind == "aspect" and c.name in wanted and c.level in ("high", None)
                       for c in claims)
        if self.require_personal and not personal and not out:
            out.append("names nothing this shopper is known to care about")
        return out

    def choose(self, candidates: list[str], user: int, item: int) -> tuple[str, bool]:
        """(reason, used_fallback)."""
        for c in candidates:
            if c and not self.problems(c, user, item):
                return c, False
        return self.fallback.fallback_for(user, item), True
