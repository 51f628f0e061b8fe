"""Provider prompt caching, modelled offline the way the provider bills it.

OpenAI's rule (the default, `OPENAI_CACHE`): a prompt's cached input is the longest
prefix it shares with an earlier prompt under the same cache key, counted only when
the prompt is at least 1,024 tokens long and the shared prefix at least that too, in
128-token steps. A request is compared as providers hash it: the tool schemas first,
then the messages in order. Each is one *segment* — a digest of its canonical text and
the characters it bills — and a prefix is matched segment by segment (a provider
matches token by token; for a conversation that only grows, as a ReAct run's does, the
two agree).

`PromptCache` is deterministic: the same prompts in the same order give the same
counts. It lives as long as its owner (the scripted model, the test server), as a
provider's cache lives in its servers: a new process starts cold.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from tierflow.foundation.spec import SpecModel

CHARS_PER_TOKEN = 4  # the offline estimate used by the scripted model and the test server
# Prefixes remembered per cache key before the oldest are forgotten (a provider evicts
# too); bounds the memory of a long-lived process.
CAPACITY = 100_000


class CachePolicy(SpecModel):
    """How a provider counts cached input: nothing below `minimum_tokens`, then whole
    `step_tokens` steps of the shared prefix."""

    spec_prefix = "prompt_cache"

    minimum_tokens: int = Field(default=1024, ge=0)
    step_tokens: int = Field(default=128, ge=1)

    def cached_tokens(self, shared_tokens: int, prompt_tokens: int) -> int:
        """The tokens billed as cached for a prompt of `prompt_tokens` whose first
        `shared_tokens` an earlier prompt had."""
        shared = min(shared_tokens, prompt_tokens)
        if prompt_tokens < self.minimum_tokens or shared < self.minimum_tokens:
            return 0
        return shared // self.step_tokens * self.step_tokens


OPENAI_CACHE = CachePolicy()


@dataclass(frozen=True)
class Segment:
    """One part of a prompt as a provider hashes it: a digest of its canonical text,
    and the characters it bills."""

    digest: bytes
    chars: int


def segment(canonical: str, chars: int | None = None) -> Segment:
    """The segment of `canonical` text; `chars` when the billed size is measured apart."""
    digest = hashlib.sha256(canonical.encode()).digest()
    return Segment(digest, len(canonical) if chars is None else chars)


def request_segments(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
) -> list[Segment]:
    """The segments of a Chat Completions request body: tool schemas, then messages."""
    return [segment(json.dumps(list(tools))), *(segment(json.dumps(m)) for m in messages)]


class PromptCache:
    """The prompt prefixes seen so far, per cache key.

    Thread-safe (a test server answers on several threads). A copy (pickle, deepcopy)
    starts cold."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._prefixes: dict[str, OrderedDict[bytes, None]] = {}

    def shared_chars(self, key: str, segments: Sequence[Segment]) -> int:
        """The characters of the longest prefix of `segments` an earlier prompt sent under
        `key` had; the prompt is remembered for the prompts after it."""
        chain = b""
        shared = chars = 0
        with self._lock:
            seen = self._prefixes.setdefault(key, OrderedDict())
            for part in segments:
                chain = hashlib.sha256(chain + part.digest).digest()
                chars += part.chars
                if chain in seen:
                    shared = chars
                    seen.move_to_end(chain)
                else:
                    seen[chain] = None
            while len(seen) > self.capacity:
                seen.popitem(last=False)
        return shared

    def cached_tokens(
        self,
        policy: CachePolicy,
        key: str,
        segments: Sequence[Segment],
        prompt_tokens: int,
        chars_per_token: int = CHARS_PER_TOKEN,
    ) -> int:
        """The cached tokens `policy` bills for a prompt of `prompt_tokens` made of
        `segments`, sent under `key` (which is then remembered)."""
        shared = self.shared_chars(key, segments) // chars_per_token
        return policy.cached_tokens(shared, prompt_tokens)

    def __reduce__(self) -> tuple[type[PromptCache], tuple[int]]:
        return (PromptCache, (self.capacity,))
