"""Injection guard: text in a tool's result that speaks to the model instead of the user.

A web page, an email or a database row can carry instructions aimed at the model that
reads it ("ignore all previous instructions", "you are now …", "<|im_start|>system",
`{"tool": "send_email", "arguments": …}`). The guard flags such text with a fixed set of
rules — patterns, no model, no network — run on the text as a reader sees it:

- `normalize` first (NFKC, invisible characters removed), so fullwidth letters and a
  zero-width space inside a word hide nothing;
- Cyrillic and Greek look-alikes of Latin letters folded to Latin ("ignore" spelt with
  a Cyrillic i and o is "ignore"), one character for one, so a match maps back;
- HTML character references decoded (`&#105;gnore`) in a second reading.

Text hidden by invisible Unicode tag characters (the "ASCII smuggling" trick) or by
bidirectional override controls is flagged by itself: neither has a place in a tool's
result. The reason names the rules that matched, never the text. The `fixed` candidate
replaces each line holding a match — within a JSON string, the string's text — with
`[removed]`, so what the injected line asked for goes with it, and drops tag and override
characters (no `fixed` when a match was found only in the decoded reading, or when the
cut breaks a JSON result).

What patterns can't see: a paraphrase ("kindly set aside what you were told earlier"),
a language other than English (and French, German, Spanish, Italian for the override
rule), text encoded (base64, rot13) or spelt out letter by letter. The corpus it is
held to is in `tests/test_tool_output_guards.py`.
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Collection, Mapping
from typing import Any

from tierflow.guardrails.base import GuardrailBase, OnFail, Verdict
from tierflow.guardrails.json_validation import is_json
from tierflow.guardrails.normalize import Normalized, normalized

REMOVED = "[removed]"

# Between two words of a rule: space, commas, hyphens, quotes, markdown emphasis — not
# the end of a sentence.
_SP = r"[\s,*_`'\"-]+"
# Names of a model that only text addressed to one uses.
_MODEL = (
    rf"(?:ai|a\.i\.|llms?|gpt[\w.-]*|chatgpt|claude|gemini|llama|copilot|chatbot"
    rf"|language{_SP}model|ai{_SP}(?:assistant|agent|model|system))"
)
_ROLE = (
    rf"(?:{_MODEL}|assistant|bot|persona|character|dan|jailbroken|unrestricted|unfiltered"
    rf"|uncensored)"
)
_Q = r'\\?"'  # a double quote, escaped or not
_YOU_ARE = rf"you(?:{_SP}are|['’]re)"
_DONT = rf"(?:do{_SP}not|don['’]?t|never)"

# Each rule: what it means (the verdict's words) and its patterns, on the folded text.
_RULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "override": (
        "it tells the model to ignore or replace its instructions",
        (
            # ignore / disregard / forget … (all) previous / your / system … instructions
            rf"\b(?:ignore|disregard|forget|override|bypass|discard|abandon)\b{_SP}"
            rf"(?:(?:all|any|every|each|of|the|your|my|these|those|everything|anything"
            rf"|you|you've|have|were|been|told|given|to){_SP}){{0,4}}"
            rf"(?:previous|prior|above|earlier|preceding|foregoing|former|original|initial"
            rf"|existing|system|developer|safety|your|all|these){_SP}"
            rf"(?:(?:system|safety|ai|model|assistant|original|prior|previous|earlier"
            rf"|initial|given|programmed|core|security|content|developer){_SP})?"
            rf"(?:instructions?|directions|rules|prompts?|guidelines|directives|commands"
            rf"|orders|context|guardrails?|restrictions|constraints|programming"
            rf"|polic(?:y|ies))\b"
            # … but not "disregard previous instructions about your delivery"
            rf"(?!{_SP}(?:regarding|about|concerning|related{_SP}to|on{_SP}(?:your|the|this)"
            rf"|for{_SP}(?:your|the|this){_SP}(?:order|delivery|parcel|package|shipment|return)"
            rf"|sent{_SP}(?:by|from)|from{_SP}(?:us|our)))",
            # disregard the above.  /  ignore everything before this and …
            rf"\b(?:ignore|disregard|forget)\b{_SP}(?:(?:all|everything|anything|the|that"
            rf"|what's|what|is|was|written){_SP}){{0,3}}(?:above|before{_SP}this)"
            rf"(?:\s*[.;:!]|\s*$|{_SP}and\b)",
            # your new / real task is …
            rf"\b(?:your|the){_SP}(?:new|real|actual|true|updated|revised){_SP}"
            rf"(?:instructions?|task|goal|objective|orders|directive|mission){_SP}(?:is|are)\b",
            rf"\bnew{_SP}(?:system{_SP})?instructions?{_SP}(?:for{_SP}|to{_SP})?(?:the{_SP})?"
            rf"{_MODEL}\b",
            rf"\b(?:adhere|obey){_SP}(?:to{_SP})?(?:the{_SP})?following{_SP}"
            rf"(?:instructions?|orders|commands)\b",
            # French, German, Spanish, Italian
            rf"\bignore[rz]?{_SP}(?:toutes{_SP})?(?:les{_SP})?(?:instructions|consignes){_SP}"
            rf"(?:precedentes|précédentes|anterieures|antérieures)\b",
            rf"\bignorier(?:e|en)?{_SP}(?:sie{_SP})?(?:alle{_SP})?(?:vorherigen|bisherigen|obigen"
            rf"|vorigen){_SP}(?:anweisungen|instruktionen|befehle)\b",
            rf"\bignora{_SP}(?:todas{_SP}|tutte{_SP})?(?:las{_SP}|le{_SP})?(?:instrucciones"
            rf"|istruzioni){_SP}(?:anteriores|precedenti)\b",
        ),
    ),
    "role": (
        "it tries to give the model a new role or mode",
        (
            rf"\b{_YOU_ARE}{_SP}now{_SP}(?:(?:a|an|the|my|in|acting{_SP}as|operating{_SP}(?:as|in))"
            rf"{_SP})?(?:[a-z]+{_SP}){{0,3}}?(?:{_ROLE}|evil|(?:developer|god|dan|debug"
            rf"|unrestricted|jailbreak){_SP}mode)\b",
            rf"\b{_YOU_ARE}{_SP}now{_SP}(?:no{_SP}longer{_SP}(?:bound|restricted|limited)"
            rf"|free{_SP}(?:from|of){_SP}(?:your|all|any)|released{_SP}from)\b",
            rf"\bfrom{_SP}now{_SP}on{_SP}(?:you|the{_SP}assistant|the{_SP}ai){_SP}"
            rf"(?:must|shall|should|will|are{_SP}to){_SP}(?:only{_SP}|always{_SP}|never{_SP})?"
            rf"(?:respond|reply|answer|act|speak|obey|follow|ignore|pretend|behave"
            rf"|output)\b",
            rf"\b(?:pretend|imagine){_SP}(?:to{_SP}be|{_YOU_ARE}|that{_SP}{_YOU_ARE}){_SP}"
            rf"(?:an?{_SP})?"
            rf"(?:[a-z]+{_SP}){{0,2}}?(?:{_ROLE})\b",
            rf"\b(?:enter|enable|activate|switch{_SP}to){_SP}(?:dan|jailbreak|god|unrestricted)"
            rf"{_SP}mode\b",
        ),
    ),
    "system_prompt": (
        "it refers to the model's system prompt or hidden instructions",
        (
            r"\bsystem[ \t_-]+prompt\b",
            rf"\bsystem{_SP}(?:message|instructions){_SP}(?:says|is|are|reads|follows)\b",
            rf"\b(?:reveal|print|repeat|output|leak|dump|disclose){_SP}(?:me{_SP})?your{_SP}"
            rf"(?:(?:full|entire|original|initial|hidden|secret){_SP})*"
            rf"(?:instructions|prompt|system{_SP}message|guidelines|configuration)\b",
        ),
    ),
    "chat_template": (
        "it contains chat-template control tokens (<|im_start|>, [INST] …)",
        (
            r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text"
            r"|end_of_text|start_header_id|end_header_id|eot_id|eom_id|tool_call|channel"
            r"|message|start|end|constrain|return|call|fim_[a-z]+)\|>",
            r"\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>",
            r"</?(?:tool_call|function_call|tool_result|tool_output|function_results?"
            r"|system|instructions?)>",
        ),
    ),
    "instruction_header": (
        "it contains a prompt-format header (### Instruction: …)",
        (
            r"^[ \t>*]*#{2,6}[ \t]*(?:instruction|system|response|input|user|assistant)"
            r"[ \t]*:",
            rf"^[ \t>*]*#{{1,6}}[ \t]*(?:new|updated|real|actual|hidden|secret|system"
            rf"|additional|override){_SP}instructions?\b",
            rf"^[ \t>*]*(?:system|assistant)\**[ \t]*:{_SP}(?:ignore|disregard|forget"
            rf"|from{_SP}now{_SP}on|you{_SP}(?:must|are{_SP}now|will{_SP}now|should{_SP}now)"
            rf"|always{_SP}respond|never{_SP}reveal)\b",
        ),
    ),
    "urgent_action": (
        "it urgently demands that data be sent somewhere",
        (),  # three patterns near one another: see `_urgent_action`
    ),
    "addressed_to_model": (
        "it addresses an AI model reading it",
        (
            rf"\b(?:if{_SP}{_YOU_ARE}{_SP}an?|dear|attention|(?:note{_SP}to|message{_SP}(?:for|to)"
            rf"|instructions{_SP}for)(?:{_SP}the|{_SP}any)?){_SP}{_MODEL}\b",
            rf"\b{_MODEL}s?{_SP}(?:reading|processing|summari[sz]ing|parsing|analy[sz]ing)"
            rf"{_SP}this\b",
            rf"\bto{_SP}you{_SP}(?:gpt[\w.-]*|chatgpt|claude|gemini|llama|the{_SP}ai|ai|llm)\b",
            rf"\bbefore{_SP}you{_SP}(?:can{_SP})?(?:solve|complete|finish|answer|continue"
            rf"|proceed|respond){_SP}(?:with{_SP})?(?:the|your){_SP}(?:original{_SP}|current{_SP})?"
            rf"task\b",
            rf"\b(?:the|your){_SP}(?:original{_SP}|current{_SP}|actual{_SP}|initial{_SP})?task{_SP}"
            rf"(?:that{_SP})?(?:i|the{_SP}user|you{_SP}were|you{_SP}have{_SP}been){_SP}"
            rf"(?:gave|given|assigned|asked)\b",
        ),
    ),
    "conceal": (
        "it asks to keep something from the user",
        (
            rf"\b{_DONT}{_SP}(?:tell|inform|mention|let|alert|notify|reveal){_SP}"
            rf"(?:[a-z]+{_SP}){{0,3}}?(?:to{_SP})?(?:the{_SP})?user\b",
            rf"\bwithout{_SP}(?:telling|letting|alerting){_SP}(?:the{_SP})?user\b",
            rf"\b(?:keep{_SP}this{_SP}(?:secret|hidden){_SP}from|hide{_SP}this{_SP}from){_SP}"
            rf"(?:the{_SP})?user\b",
        ),
    ),
    "tool_call": (
        "it asks for a tool or function call",
        (  # JSON keys quoted, or escaped-quoted inside a JSON string (\")
            rf"{_Q}(?:function|tool|tool_name|function_name|recipient_name){_Q}\s*:\s*"
            rf"{_Q}[\w.-]+{_Q}\s*,\s*{_Q}(?:arguments|args|parameters|params|input"
            rf"|tool_input){_Q}\s*:",
            rf"{_Q}name{_Q}\s*:\s*{_Q}[a-z]\w*[_.][\w.]*{_Q}\s*,\s*{_Q}(?:arguments|args"
            rf"|parameters|params|tool_input){_Q}\s*:",
            rf"{_Q}action{_Q}\s*:\s*{_Q}[\w.-]+{_Q}\s*,\s*{_Q}action_input{_Q}\s*:",
            rf"{_Q}(?:arguments|args|action_input|tool_input){_Q}\s*:\s*\{{[^{{}}]{{0,400}}\}}"
            rf"\s*,\s*{_Q}(?:function|tool|tool_name|function_name|name){_Q}\s*:",
            rf"{_Q}(?:function_call|tool_calls|tool_call|tool_use|tool_code){_Q}\s*:",
            rf"{_Q}type{_Q}\s*:\s*{_Q}(?:function|tool_use|tool_call|function_call){_Q}",
            rf"\b(?:call|invoke|execute|trigger){_SP}(?:the{_SP})?(?:function|tool){_SP}"
            rf"[a-z]\w*_\w+",
            rf"\b(?:call|invoke|execute|run|use|trigger){_SP}(?:the{_SP})?[a-z]\w*_\w+{_SP}"
            rf"(?:function|tool|api|command)\b",
            r"\b(?:call|invoke|execute)\W+[a-z]\w*_\w*\s*\(",
        ),
    ),
}
RULES: tuple[str, ...] = (*_RULES, "hidden_characters")
_HIDDEN_MEANING = "it hides text in invisible Unicode tag or direction-override characters"


def _compiled(pattern: str) -> tuple[re.Pattern[str], bool]:
    """A rule's pattern for the lower-cased text, and whether it must start a word. A
    leading `\\b` (and the optional backslash before a quote) is checked in code
    instead: a pattern that begins with an assertion can't skip ahead to the letters it
    may start with, and runs several times slower."""
    if pattern.startswith(_Q):
        pattern = '"' + pattern.removeprefix(_Q)
    bounded = pattern.startswith(r"\b")
    return re.compile(pattern.removeprefix(r"\b"), re.MULTILINE), bounded


_PATTERNS = {rule: tuple(map(_compiled, patterns)) for rule, (_meaning, patterns) in _RULES.items()}
# urgent_action: "IMPORTANT!!!", then within 300 characters a verb of sending, then within
# 160 characters of it "to" an address, a URL or "this address". Found as three scans
# and joined by position: one pattern with two lazy gaps takes quadratic time on a text
# that repeats the first part.
_URGENT = re.compile(r"(?:important|urgent|attention|warning|critical|mandatory)\W{0,3}!{2,}")
_SEND = re.compile(r"(?:send|forward|email|e-mail|transfer|wire|post|upload|share|leak)\b")
_DESTINATION = re.compile(
    r"to\W+(?:[\w.+-]+@[\w-]+\.[\w.]+|https?://|this\W+(?:address|email|account|url"
    r"|number))"
)
# Unicode tag characters (U+E0000-E007F: invisible, each mirrors an ASCII one) and the
# bidirectional embedding, override and isolate controls.
_HIDDEN = re.compile("[\U000e0000-\U000e007f\u202a-\u202e\u2066-\u2069]")
# Cyrillic and Greek letters drawn like Latin ones, folded one for one.
_LOOKS_LIKE = "аеорсухіјѕԁһԛԝӏАВЕКМНОРСТХУІЈЅαβεικνορτυχΑΒΕΗΙΚΜΝΟΡΤΥΧΖ"
_LOOKALIKES = str.maketrans(_LOOKS_LIKE, "aeopcyxijsdhqwlABEKMHOPCTXYIJSabeikvoptuxABEHIKMNOPTYXZ")
_LOOKALIKE = re.compile(f"[{_LOOKS_LIKE}]")


class InjectionGuard(GuardrailBase):
    """Flag (and, as a fix, cut out) text addressed to the model: prompt injection in a
    tool's result, or in any other candidate text.

    `rules` picks among `RULES` (all by default): override, role, system_prompt,
    chat_template, instruction_header, urgent_action, addressed_to_model, conceal,
    tool_call, hidden_characters.
    """

    kind = "injection"

    def __init__(
        self,
        *,
        rules: Collection[str] = RULES,
        name: str = "injection",
        on_fail: OnFail = "refuse",
        max_reasks: int = 0,
        refusal: str = "Sorry, I can't use that content.",
    ) -> None:
        super().__init__(name=name, on_fail=on_fail, max_reasks=max_reasks, refusal=refusal)
        unknown = set(rules) - set(RULES)
        if unknown:
            raise ValueError(f"unknown injection rules {sorted(unknown)}; known: {list(RULES)}")
        self.rules = tuple(rule for rule in RULES if rule in rules)

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
        text = normalized(candidate)
        folded = text.text
        if _LOOKALIKE.search(folded) is not None:
            folded = folded.translate(_LOOKALIKES)
        found = self._matches(folded)
        unescaped = html.unescape(folded) if "&" in folded else folded
        decoded = self._matches(unescaped) if unescaped != folded else {}
        only_decoded = [rule for rule in decoded if rule not in found]
        hidden = "hidden_characters" in self.rules and _HIDDEN.search(candidate) is not None
        if not (found or only_decoded or hidden):
            return Verdict(ok=True, reason="no text addressed to the model")
        meanings = [_RULES[rule][0] for rule in found]
        meanings += [f"{_RULES[rule][0]} (in HTML character references)" for rule in only_decoded]
        if hidden:
            meanings.append(_HIDDEN_MEANING)
        reason = "it looks like a prompt injection: " + "; ".join(meanings)
        fixed = None if only_decoded else _fix(candidate, text, found)
        return Verdict(ok=False, reason=reason, fixed=fixed)

    def _matches(self, text: str) -> dict[str, list[tuple[int, int]]]:
        """Each chosen rule's matches in `text` (normalised and folded)."""
        lowered = _lower(text)
        found: dict[str, list[tuple[int, int]]] = {}
        for rule in self.rules:
            if rule == "urgent_action":
                spans = _urgent_action(lowered)
            else:
                spans = [s for p in _PATTERNS.get(rule, ()) for s in _spans(*p, lowered)]
            if spans:
                found[rule] = spans
        return found

    def describe(self) -> dict[str, Any]:
        return {"rules": list(self.rules)}


def _lower(text: str) -> str:
    """Lower case, one character for one (the rare letter whose lower case is longer,
    like the Turkish dotted I, is kept)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _spans(pattern: re.Pattern[str], bounded: bool, text: str) -> list[tuple[int, int]]:
    """The pattern's matches; a `bounded` one only where a word starts."""
    spans = []
    position = 0
    while (match := pattern.search(text, position)) is not None:
        start = match.start()
        if bounded and start > 0 and _is_word(text[start - 1]) and _is_word(text[start]):
            position = start + 1  # inside a word: look again from the next character
            continue
        spans.append(match.span())
        position = max(match.end(), start + 1)
    return spans


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _urgent_action(text: str) -> list[tuple[int, int]]:
    urgent = [(m.start(), m.end()) for m in _spans_of(_URGENT, text)]
    if not urgent:
        return []
    sends = [m.start() for m in _spans_of(_SEND, text)]
    ends = [(m.start(), m.end()) for m in _spans_of(_DESTINATION, text)]
    spans = []
    for start, end in urgent:
        first = bisect.bisect_left(sends, end)
        for send in sends[first:]:
            if send > end + 300:
                break
            after = bisect.bisect_left(ends, (send, 0))
            if after < len(ends) and ends[after][0] <= send + 160:
                spans.append((start, ends[after][1]))
                break
    return spans


def _spans_of(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    """Matches that start a word."""
    return [
        m
        for m in pattern.finditer(text)
        if m.start() == 0 or not (_is_word(text[m.start() - 1]) and _is_word(text[m.start()]))
    ]


def _fix(
    candidate: str, text: Normalized, found: Mapping[str, list[tuple[int, int]]]
) -> str | None:
    """The candidate with the line (or JSON string) of every match replaced by
    `[removed]` (on the original text's characters) and every tag or override character
    dropped; None if that breaks JSON."""
    spans = sorted(
        text.span(*_segment(text.text, start, end))
        for spans in found.values()
        for start, end in spans
    )
    out: list[str] = []
    position = 0
    for start, end in spans:
        if start < position:  # overlaps a span already removed
            position = max(position, end)
            continue
        out += [candidate[position:start], REMOVED]
        position = end
    out.append(candidate[position:])
    fixed = _HIDDEN.sub("", "".join(out))
    if is_json(candidate) and not is_json(fixed):
        return None
    return fixed


_BOUNDARY = re.compile(r'\n|(?<!\\)"')


def _segment(text: str, start: int, end: int) -> tuple[int, int]:
    """The line, or the part of it between two double quotes, around `text[start:end]`."""
    before = [m.end() for m in _BOUNDARY.finditer(text, max(0, start - 4000), start)]
    after = _BOUNDARY.search(text, end)
    return (before[-1] if before else 0), (after.start() if after else len(text))
