"""Phrases matched as whole words: case-insensitive, any run of spaces between words.

A list of phrases is one alternation, longest first, so a long list costs one scan of
the text and "return window" is found as itself, not as "return". The text searched is
normalised first (`normalize`), so the patterns are written for plain ASCII spacing."""

from __future__ import annotations

import re
from collections.abc import Iterable


def phrase_pattern(phrases: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for every phrase with a word in it; None when none has."""
    bodies = [
        r"\s+".join(re.escape(word) for word in phrase.split())
        for phrase in sorted(set(phrases), key=lambda phrase: (-len(phrase), phrase))
        if phrase.split()
    ]
    return re.compile(rf"(?<!\w)(?:{'|'.join(bodies)})(?!\w)", re.IGNORECASE) if bodies else None
