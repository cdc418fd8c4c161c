"""Untrusted text (reviews, titles, brands, categories): make it safe to quote."""
from __future__ import annotations

import re
import unicodedata

_SPECIAL = re.compile(r"<\|[^|>]{0,40}\|>|<<<|>>>|```")
_INSTRUCTION = re.compile(
    r"[^.!?\n]*\b(ignore|disregard|forget|override)\b[^.!?\n]*\b(instruction|above|previous|"
    r"prompt|rules?|system)\b[^.!?\n]*[.!?]?|[^.!?\n]*\b(you are now|new instructions?|"
    r"system prompt|assistant:|say that|respond with)\b[^.!?\n]*[.!?]?", re.IGNORECASE)


def clean_untrusted(text: str, max_chars: int = 200) -> str:
    """Make shopper- or seller-written text safe to quote in a prompt: Unicode normalised,
    control characters and chat-template tokens (``<|im_start|>``...) and our quote delimiters
    removed, sentences that try to give instructions replaced by ``[instruction removed]``,
    whitespace collapsed, cut to ``max_chars`` (with '...', so the cut is visible)."""
    if not isinstance(text, str):
        raise TypeError(f"expected text, got {type(text).__name__}")
    t = unicodedata.normalize("NFKC", text)
    t = "".join(ch if ch.isprintable() else " " for ch in t)
    t = _SPECIAL.sub(" ", t)
    t = _INSTRUCTION.sub(" [instruction removed] ", t)
    t = re.sub(r"\s+", " ", t).strip()
    return t if len(t) <= max_chars else t[:max_chars - 3].rstrip() + "..."
