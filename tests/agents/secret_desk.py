"""The support desk (examples/support_desk.py: its tools, guards, router and policy) with
secrets and personal data in every place a run carries text: the user's request, tool
arguments, a tool's result, a tool's error, a call held for approval (a refund above
$200), the reviewer's reason, the plan and the answer.

`CORPUS[place][kind]` is the value placed there: each unique, so a scan that finds one
says where it came from. `REQUEST` starts the run; it pauses on the held refund, and
`REVIEW` approves it. Two tools join the example's: `ticket_notes` (its arguments and
its result carry secrets) and `billing_login` (a side-effecting tool whose error does).
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
from pathlib import Path

from tierflow import Scenario, ScriptedChatModel, Turn, tool
from tierflow.runs.load import load_agent

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_desk.py"

PLACES = ("input", "tool_args", "tool_result", "tool_error", "held", "review", "plan", "answer")
KINDS = (
    "stripe",
    "google",
    "aws_secret",
    "github_pat",
    "jwt",
    "slack",
    "api_key",
    "password",
    "card",
    "iban",
    "ssn",
)
ALNUM = string.ascii_letters + string.digits


def _random(seed: str, size: int, alphabet: str = ALNUM) -> str:
    out = ""
    counter = 0
    while len(out) < size:
        digest = hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        out += "".join(alphabet[b % len(alphabet)] for b in digest)
        counter += 1
    return out[:size]


def _luhn_completed(digits: str) -> str:
    for check in "0123456789":
        total = 0
        for index, char in enumerate(reversed(digits + check)):
            value = int(char) * (2 if index % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return digits + check
    raise AssertionError("unreachable")


def _iban(seed: str) -> str:
    bban = "WEST" + _random(seed, 14, string.digits)
    numeric = "".join(str(int(c, 36)) for c in bban + "GB00")
    check = 98 - int(numeric) % 97
    iban = f"GB{check:02d}{bban}"
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def _value(place: str, kind: str) -> str:
    seed = f"{place}:{kind}"
    if kind == "stripe":
        return "sk_live_" + _random(seed, 32)
    if kind == "google":
        return "AIza" + _random(seed, 35, ALNUM + "-_")
    if kind == "aws_secret":
        return _random(seed, 40, ALNUM + "/+")
    if kind == "github_pat":
        return "github_pat_" + _random(seed, 82, ALNUM + "_")
    if kind == "jwt":
        header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
        claims = json.dumps({"sub": seed, "n": _random(seed, 12)}).encode()
        body = base64.urlsafe_b64encode(claims).decode().rstrip("=")
        return f"{header}.{body}.{_random(seed + 'sig', 43, ALNUM + '-_')}"
    if kind == "slack":
        return f"xoxb-{_random(seed, 12, string.digits)}-{_random(seed + 'b', 24).lower()}"
    if kind == "api_key":
        return "ak-" + _random(seed, 18).lower()
    if kind == "password":
        return "Pw!" + _random(seed, 10) + "#9"
    if kind == "card":
        digits = _luhn_completed("4539" + _random(seed, 11, string.digits))
        return " ".join(digits[i : i + 4] for i in range(0, 16, 4))
    if kind == "iban":
        return _iban(seed)
    if kind == "ssn":
        area = 100 + int(_random(seed, 3, string.digits)) % 500
        group = 10 + int(_random(seed + "g", 2, string.digits)) % 89
        serial = 1000 + int(_random(seed + "s", 4, string.digits)) % 8999
        return f"{area:03d}-{group:02d}-{serial:04d}"
    raise ValueError(kind)


CORPUS: dict[str, dict[str, str]] = {p: {k: _value(p, k) for k in KINDS} for p in PLACES}
# A private key, and credentials inside a URL: in the tool's result.
PEM_BODY = [_random(f"pem:{line}", 64, ALNUM + "+/") for line in range(4)]
PRIVATE_KEY = "\n".join(
    ["-----BEGIN RSA PRIVATE KEY-----", *PEM_BODY, "-----END RSA PRIVATE KEY-----"]
)
URL_PASSWORD = "Url" + _random("url", 14)
EXTRA = {"tool_result:private_key": PRIVATE_KEY, "tool_result:url_password": URL_PASSWORD}


def text_for(place: str) -> str:
    """Every kind of `place`, each written the way it tends to be."""
    v = CORPUS[place]
    return (
        f"card {v['card']}, IBAN {v['iban']}, SSN {v['ssn']}; the password is {v['password']}; "
        f"my api key: {v['api_key']}; stripe {v['stripe']}; google {v['google']}; "
        f"aws_secret_access_key={v['aws_secret']}; github {v['github_pat']}; "
        f"Authorization: Bearer {v['jwt']}; slack {v['slack']}"
    )


def secrets() -> dict[str, str]:
    """`place:kind` → value, for every value placed."""
    found = {f"{p}:{k}": value for p, kinds in CORPUS.items() for k, value in kinds.items()}
    return {**found, **EXTRA}


REQUEST = f"About ticket 77: please refund order 1042, it arrived damaged. {text_for('input')}"
REVIEW = {"action": "approve", "reason": f"checked by the lead: {text_for('review')}"}


@tool(scope="orders:read")
def ticket_notes(ticket_id: int, api_key: str, note: str) -> str:
    """The support ticket's notes, read with the ticketing system's key."""
    v = CORPUS["tool_result"]
    return (
        f"ticket {ticket_id}:\n"
        f"  session_id: {v['api_key']}\n"
        f"  secret_key: {v['aws_secret']}\n"
        f"  private_key: |\n{PRIVATE_KEY}\n"
        f"  db: postgresql://desk:{URL_PASSWORD}@db.internal:5432/desk\n"
        f"  note: {text_for('tool_result')}"
    )


@tool(scope="refunds:write", side_effects=True)
def billing_login(account: str, password: str) -> str:
    """Log in to the billing system."""
    raise PermissionError(f"billing refused {account}: {text_for('tool_error')}")


_args = CORPUS["tool_args"]
PLAN = [
    {"step": f"read ticket 77 ({text_for('plan')})", "status": "in_progress"},
    {"step": "refund the damaged machine", "status": "pending"},
    {"step": "answer", "status": "pending"},
]
ANSWER = {
    "answer": "Your refund for order 1042 is recorded and was approved by a senior agent. "
    f"For the record: {text_for('answer')}",
    "order_ids": [1042],
    "actions": ["refund recorded on order 1042"],
}
TURNS = (
    Turn(
        calls=(
            ("update_plan", {"steps": PLAN}),
            (
                "ticket_notes",
                {"ticket_id": 77, "api_key": _args["api_key"], "note": text_for("tool_args")},
            ),
            ("order_details", {"order_id": 1042}),
        )
    ),
    Turn(calls=(("billing_login", {"account": "acme", "password": _args["password"]}),)),
    Turn(
        calls=(
            (
                "refund",
                {"order_id": 1042, "amount_usd": 349.0, "reason": f"damaged; {text_for('held')}"},
            ),
        )
    ),
    Turn(text=json.dumps(ANSWER)),
)
SCRIPT = ScriptedChatModel(scenarios=(Scenario(match="ticket 77", turns=TURNS),))

desk, _ = load_agent(str(EXAMPLE))
agent = desk.model_copy(update={"tools": (*desk.tools, ticket_notes, billing_login)}).with_models(
    fast=SCRIPT, reasoning=SCRIPT
)


# --- scanning what was stored -----------------------------------------------------------


def needles(value: str) -> list[bytes]:
    """What betrays `value` in stored bytes: the value, its JSON-escaped form, and every
    12-character window of it (every 4th) — a mask that took only part of it leaves one."""
    forms = {value, json.dumps(value)[1:-1]}
    lines = [line for line in value.splitlines() if len(line) >= 12] or [value]
    windows = {line[i : i + 12] for line in lines for i in range(0, len(line) - 11, 4)}
    return [form.encode() for form in forms | windows]


def leaked(haystack: bytes, placed: dict[str, str] | None = None) -> list[str]:
    """The `place:kind` names of the placed values that `haystack` betrays (a window two
    values share — a JWT's header — betrays neither)."""
    placed = secrets() if placed is None else placed
    found = {name: set(needles(value)) for name, value in placed.items()}
    shared = {
        n
        for name, ns in found.items()
        for n in ns
        for other in found
        if other != name and n in found[other]
    }
    return sorted(name for name, ns in found.items() if any(n in haystack for n in ns - shared))
