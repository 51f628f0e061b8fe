"""Redaction: known secret formats (detect-secrets' ruleset), sensitive names however
they are written, declared patterns, literal values and personal data are masked before
anything is stored, in whatever structure holds them. The end-to-end tests put a secret
in a tool argument and a tool result, write the audit log, the side-effect record and a
checkpoint, then scan the files' bytes; and check that the caller still gets the real
answer. (tests/test_redaction_corpus.py runs a whole corpus; test_redaction_traces.py
the traces.)"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import Scripted, thread
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.types import Command, Interrupt, Send

from tierflow import Turn
from tierflow.errors import SpecError
from tierflow.governance.approval import ApprovalRule
from tierflow.governance.audit import AuditLog, audit
from tierflow.governance.calls import GovernedCall
from tierflow.governance.governor import Governor
from tierflow.governance.permissions import Grant
from tierflow.governance.policy import Policy
from tierflow.governance.redact import (
    MASK,
    RedactingLogFilter,
    RedactingSerializer,
    Redactor,
    redact_checkpoints,
)
from tierflow.governance.side_effects import RecordedResult
from tierflow.runs.runner import Runner
from tierflow.store import RunsTable, SqliteStore, open_sqlite
from tierflow.store.database import acquire_sqlite

REDACTOR = Redactor()
# Hypothesis without a deadline (a timed assert: a loaded CI machine stalls an example
# past 200 ms, and Hypothesis fails it as flaky) and on fixed examples.
DETERMINISTIC = settings(deadline=None, derandomize=True, database=None)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("key sk-proj-AbCdEf0123456789xyz here", f"key {MASK} here"),
        ("Authorization: Bearer eyJhbGciOi.abc", "Authorization: Bearer [REDACTED:json_web_token]"),
        ("authorization: Token 0123456789", f"authorization: Token {MASK}"),
        ("login with password=hunter2&user=al", f"login with password={MASK}&user=al"),
        ('{"db_password": "p4ss"} was sent', f'{{"db_password": "{MASK}"}} was sent'),
        (
            "postgresql://app:s3cret@db:5432/x",
            "postgresql://app:[REDACTED:basic_auth_credentials]@db:5432/x",
        ),
        ("AKIAIOSFODNN7EXAMPLE", "[REDACTED:aws_access_key]"),
        ("order 1042 shipped, 3 tokens used", "order 1042 shipped, 3 tokens used"),
        ("max_tokens: 800", "max_tokens: 800"),
    ],
)
def test_text_patterns(text: str, masked: str) -> None:
    assert REDACTOR.redact_text(text) == masked


# Provider formats, from detect-secrets' plugins and the gaps it leaves. Each value is
# masked whole, by a mask naming its kind.
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc" + "Xq81hPLMxT0aYv3N"  # longer than the rule
GOOGLE = "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
GITHUB_PAT = "github_pat_11ABCDEFG0" + "a1B2c3D4e5F6g7H8i9J0" * 4
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SLACK = "xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx4Z\nQ1w2e3r4\n-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("secret", "kind"),
    [
        (STRIPE, "stripe_access_key"),
        ("sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc", "stripe_access_key"),
        (GOOGLE, "google_api_key"),
        (GITHUB_PAT, "github_token"),
        ("ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2, "github_token"),
        (AWS_SECRET, "base64_high_entropy_string"),
        ("AKIAIOSFODNN7EXAMPLE", "aws_access_key"),
        (SLACK, "slack_token"),
        (JWT, "json_web_token"),
        (PEM, "private_key"),
        ("SG." + "a" * 22 + "." + "b" * 43, "sendgrid_api_key"),
    ],
)
def test_known_formats_are_masked_whole_and_named(secret: str, kind: str) -> None:
    masked = REDACTOR.redact_text(f"here: {secret}. Next")
    assert masked == f"here: [REDACTED:{kind}]. Next"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("api_key=k-77x", f"api_key={MASK}"),
        ("curl -H 'x-api-key: k-77x' https://api", f"curl -H 'x-api-key: {MASK}' https://api"),
        ("X-Api-Key:k-77x", f"X-Api-Key:{MASK}"),
        ("secret_key: two words", f"secret_key: {MASK} words"),
        ('secret_key: "two words"', f'secret_key: "{MASK}"'),
        ("creds:\n  private_key: k-77x\n  user: al", f"creds:\n  private_key: {MASK}\n  user: al"),
        ("{'session_id': 'k 77x', 'n': 1}", f"{{'session_id': '{MASK}', 'n': 1}}"),
        ('{\\"password\\": \\"k-77x\\"}', f'{{\\"password\\": \\"{MASK}\\"}}'),
        ("Login(user='al', password='k-77x')", f"Login(user='al', password='{MASK}')"),
        ("the password is k-77x.", f"the password is {MASK}."),
        ("My password was k-77x, sorry", f"My password was {MASK}, sorry"),
        ("my api key: k-77x", f"my api key: {MASK}"),
        ("the API key is now k-77x", f"the API key is now {MASK}"),
        ("csrftoken=k-77x", f"csrftoken={MASK}"),
        ("DB-PASSWORD => k-77x", f"DB-PASSWORD => {MASK}"),
        (
            "tokens: 800, token_count: 3, passwordless: true",
            "tokens: 800, token_count: 3, passwordless: true",
        ),
    ],
)
def test_names_are_found_however_they_are_written(text: str, masked: str) -> None:
    assert REDACTOR.redact_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "Order 1042 (Espresso Machine Pro, $349.00) shipped with DHL on 2026-11-20.",
        "Tracking DHL-558201; call +1 555 0100 about order #1007.",
        "tf-0123456789abcdef0123456789abcdef call_0717016a_2_0 run-0199f2a4-7c3b-7d21-9e0a",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "tierflow/governance/redact.py line 120: RedactingSerializer.dumps_typed",
        "1234 5678 9012 3456 is no card (Luhn), nor is GB00 WEST 1234 5698 7654 32 an IBAN",
        '{"max_tokens": 800, "input_tokens": 12, "token_usage": {"total_tokens": 20}}',
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert REDACTOR.redact_text(text) == text


def test_personal_data_is_masked_by_policy() -> None:
    text = "card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32, SSN 078-05-1120"
    masked = "card [REDACTED:card], IBAN [REDACTED:iban], SSN [REDACTED:ssn]"
    assert REDACTOR.redact_text(text) == masked
    assert REDACTOR.redact_text("card 4111111111111111") == "card [REDACTED:card]"
    # Fullwidth digits and zero-width spaces don't hide a number (the PII guard's
    # normalisation); the mask covers the original characters.
    hidden = "card ４１１１\u200b1111 1111 1111!"
    assert REDACTOR.redact_text(hidden) == "card [REDACTED:card]!"
    assert Redactor(pii=()).redact_text(text) == text
    email = Redactor(pii=("email",)).redact_text("write to al@example.com")
    assert email == "write to [REDACTED:email]"


def test_unknown_personal_data_fails_when_declared() -> None:
    with pytest.raises(SpecError, match="unknown personal data"):
        Redactor(pii=("passport",))


def test_the_mask_names_the_kind_inside_the_declared_mask() -> None:
    redactor = Redactor(mask="<hidden>")
    assert redactor.redact_text(f"key {GOOGLE}") == "key <hidden>:google_api_key"
    assert redactor.redact_text("password=x1") == "password=<hidden>"
    assert redactor.redact_text("password=<hidden>") == "password=<hidden>"


def test_sensitive_names_mask_the_whole_value() -> None:
    arguments = {
        "order_id": 1042,
        "password": "correct horse battery staple",
        "clientSecret": {"nested": "x"},
        "API-Key": 12345,
        "max_tokens": 800,
        "idempotency_key": "tf-abc",
        "session_id": None,
    }
    assert REDACTOR.redact_arguments(arguments) == {
        "order_id": 1042,
        "password": MASK,
        "clientSecret": MASK,
        "API-Key": MASK,
        "max_tokens": 800,
        "idempotency_key": "tf-abc",
        "session_id": None,
    }
    assert arguments["password"] == "correct horse battery staple"  # the input is untouched


def test_json_inside_strings_is_redacted_structurally() -> None:
    raw = '{"order_id": 7, "password": "two words"}'
    assert REDACTOR.redact(raw) == f'{{"order_id": 7, "password": "{MASK}"}}'


def test_messages_are_redacted_field_by_field() -> None:
    call = AIMessage(
        "",
        tool_calls=[{"name": "login", "args": {"password": "pw1"}, "id": "c1"}],
        additional_kwargs={
            "tool_calls": [{"function": {"name": "login", "arguments": '{"password": "pw1"}'}}]
        },
    )
    masked = REDACTOR.redact(call)
    assert masked.tool_calls[0]["args"] == {"password": MASK}
    assert "pw1" not in masked.model_dump_json()
    assert call.tool_calls[0]["args"] == {"password": "pw1"}
    result = ToolMessage("token=abc123", tool_call_id="c1")
    assert REDACTOR.redact(result).content == f"token={MASK}"


def test_declared_patterns_names_and_values() -> None:
    redactor = Redactor(
        patterns=(r"acme-[0-9a-f]{8}",), sensitive_names=("pin",), values=frozenset({"xyzzy"})
    )
    assert redactor.redact_text("acme-deadbeef and xyzzy") == f"{MASK} and {MASK}"
    assert redactor.redact({"pin": 1234, "password": "kept"}) == {"pin": MASK, "password": "kept"}
    assert "xyzzy" not in redactor.model_dump_json()  # literal secrets are never serialised
    assert redactor.with_values("plugh").redact_text("plugh xyzzy") == f"{MASK} {MASK}"


def test_a_bad_pattern_fails_when_declared() -> None:
    with pytest.raises(SpecError, match="not a regular expression"):
        Redactor(patterns=("(unclosed",))


@DETERMINISTIC
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=40))
def test_a_key_is_masked_whatever_surrounds_it(noise: str) -> None:
    secret = "sk-" + "Q" * 24
    assert secret not in REDACTOR.redact_text(f"{noise} {secret} {noise}")


# --- the bytes of the files ---------------------------------------------------------------

ARGUMENT_SECRET = "hunter2-Zq9wX"  # a password argument: masked by its name
RESULT_SECRET = "sk-tierflowTEST0123456789abcdef"  # an API key in a result: by its pattern


def files_of(db: Path) -> list[Path]:
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


def found_in_bytes(db: Path, secret: str) -> list[str]:
    return [p.name for p in files_of(db) if secret.encode() in p.read_bytes()]


def checkpointed_text(saver: SqliteStore, thread: str) -> str:
    """Everything the checkpoints of `thread` hold, decoded (the store compresses its
    payloads, so a byte scan alone could miss a secret there)."""
    config: Any = {"configurable": {"thread_id": thread}}
    parts = []
    for item in saver.list(config):
        parts.append(repr(item.checkpoint["channel_values"]))
        parts.append(repr(item.pending_writes))
    return "\n".join(parts)


def run_the_governed_step(db: Path, serde: JsonPlusSerializer) -> tuple[str, dict[str, bytes]]:
    """A login tool call with a password argument whose result holds an API key: audited,
    recorded as a side effect, and checkpointed. Returns the decoded checkpoints and the
    bytes of the files, read while the store is still open (its -wal file exists then)."""
    policy = Policy(
        grants=(Grant(holder="agent:ops", scopes=frozenset({"accounts:write"})),),
        approvals=(ApprovalRule(scope="accounts:write", argument="user", equals="root"),),
    )
    gov = Governor(policy, db, agent="ops", thread="t1")
    arguments = {"user": "alice", "password": ARGUMENT_SECRET}
    result = f"logged in; session key {RESULT_SECRET}"
    call = GovernedCall("login", "accounts:write", arguments, 1, "c1", idempotency_key="tf-1")
    assert gov.authorize_tool(call).allowed
    assert gov.execute_tool(call, lambda _attempt: RecordedResult(True, result)) is not None
    assert gov.side_effects.recorded("tf-1") is not None
    failing = GovernedCall("login", "accounts:write", arguments, 1, "c2")
    failed = gov.execute_tool(
        failing, lambda _attempt: RecordedResult(False, f"rejected: {result}")
    )
    assert failed is not None
    assert len(audit(db, "t1")) == 2  # the failure's text is the second row's reason

    def model(state: MessagesState) -> dict[str, Any]:
        tool_call = {"name": "login", "args": arguments, "id": "c1"}
        return {"messages": [AIMessage("", tool_calls=[tool_call])]}

    def act(state: MessagesState) -> dict[str, Any]:
        return {"messages": [ToolMessage(result, tool_call_id="c1")]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("act", act)
    builder.add_edge(START, "model")
    builder.add_edge("model", "act")
    with SqliteStore(acquire_sqlite(db), serde=serde) as saver:
        graph = builder.compile(checkpointer=saver)
        config: Any = {"configurable": {"thread_id": "t1"}}
        graph.invoke({"messages": [HumanMessage("log me in")]}, config, durability="sync")
        files = {path.name: path.read_bytes() for path in files_of(db)}
        return checkpointed_text(saver, "t1"), files


def test_a_secret_in_an_argument_and_a_result_is_in_no_file(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    decoded, while_open = run_the_governed_step(db, RedactingSerializer(Redactor()))
    assert "runs.db-wal" in while_open
    for secret in (ARGUMENT_SECRET, RESULT_SECRET):
        assert [name for name, data in while_open.items() if secret.encode() in data] == []
        assert found_in_bytes(db, secret) == []  # and after the store closed
        assert secret not in decoded
    assert MASK in decoded  # the checkpoints hold the masked values instead


def test_the_scan_finds_secrets_when_checkpoints_are_not_redacted(tmp_path: Path) -> None:
    """The control: with LangGraph's plain serializer the same step leaves both secrets
    in the checkpoints — so the test above would catch a redactor that stopped working."""
    db = tmp_path / "runs.db"
    decoded, _ = run_the_governed_step(db, JsonPlusSerializer())
    assert ARGUMENT_SECRET in decoded
    assert RESULT_SECRET in decoded


def test_the_byte_scan_finds_an_unredacted_audit_row(tmp_path: Path) -> None:
    """The control for the governance tables: a redactor that masks nothing leaves the
    secrets where the byte scan sees them."""
    db = tmp_path / "runs.db"
    log = AuditLog(db, redactor=Redactor(patterns=(), sensitive_names=()))
    log.write(
        {
            "thread": "t1",
            "step": 1,
            "kind": "tool",
            "name": "login",
            "decision": "allowed",
            "outcome": "ok",
            "arguments": {"password": ARGUMENT_SECRET},
            "reason": RESULT_SECRET,
        }
    )
    assert found_in_bytes(db, ARGUMENT_SECRET)
    assert found_in_bytes(db, RESULT_SECRET)


def test_log_records_are_redacted_before_formatting(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tierflow.test.redact")
    logger.addFilter(RedactingLogFilter())
    try:
        with caplog.at_level(logging.INFO, logger="tierflow.test.redact"):
            logger.info("calling with %s", f"Bearer {RESULT_SECRET}")
    finally:
        logger.filters.clear()
    assert caplog.messages == [f"calling with Bearer {MASK}"]


# --- what the redactor walks ----------------------------------------------------------


class Held(NamedTuple):
    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Note:
    text: str
    api_key: str


def test_interrupts_dataclasses_sets_tuples_and_sends_are_walked() -> None:
    held = {"kind": "tool_review", "calls": [{"tool": "refund", "arguments": {"reason": STRIPE}}]}
    paused = Interrupt(value=held, id="i1")
    value = [
        paused,
        Command(resume={"password": "pw1"}, goto=[Send("act", {"note": f"key {GOOGLE}"})]),
        {STRIPE, "plain"},
        frozenset({GOOGLE}),
        (STRIPE, 1),
        Held("refund", {"note": f"key {GOOGLE}"}),
        Note(text=f"key {GOOGLE}", api_key="k-1"),
    ]
    masked = REDACTOR.redact(value)
    assert STRIPE not in repr(masked) and GOOGLE not in repr(masked) and "pw1" not in repr(masked)
    interrupt, command, a_set, a_frozenset, a_tuple, named, note = masked
    assert isinstance(interrupt, Interrupt) and interrupt.id == "i1"
    assert interrupt.value["calls"][0]["arguments"]["reason"] == "[REDACTED:stripe_access_key]"
    assert isinstance(command, Command) and command.resume == {"password": MASK}
    assert isinstance(command.goto, Sequence)
    assert isinstance(command.goto[0], Send) and command.goto[0].node == "act"
    assert a_set == {"[REDACTED:stripe_access_key]", "plain"}
    assert a_frozenset == frozenset({"[REDACTED:google_api_key]"})
    assert a_tuple == ("[REDACTED:stripe_access_key]", 1)
    assert isinstance(named, Held) and named.arguments == {"note": "key [REDACTED:google_api_key]"}
    assert note == Note(text="key [REDACTED:google_api_key]", api_key=MASK)
    assert paused.value is held and held["calls"][0]["arguments"]["reason"] == STRIPE


def test_json_inside_json_inside_a_string_is_masked_as_data() -> None:
    inner = json.dumps({"password": "two words", "note": f"card 4111 1111 1111 1111 {GOOGLE}"})
    outer = json.dumps({"result": inner, "ok": True})
    masked = json.loads(REDACTOR.redact_text(outer))
    assert json.loads(masked["result"]) == {
        "password": MASK,
        "note": "card [REDACTED:card] [REDACTED:google_api_key]",
    }
    # JSON text is written back as valid JSON, a null under a sensitive name kept null.
    assert json.loads(REDACTOR.redact_text('{"next_token": null, "n": 1}')) == {
        "next_token": None,
        "n": 1,
    }


SECRET_TEXT = st.sampled_from(
    [STRIPE, GOOGLE, AWS_SECRET, "password=hunter2", "the api key is k-77x", "4111111111111111"]
)


@DETERMINISTIC
@given(st.lists(st.one_of(SECRET_TEXT, st.text(max_size=20)), max_size=6))
def test_masking_twice_changes_nothing(parts: list[str]) -> None:
    once = REDACTOR.redact_text(" ".join(parts))
    assert REDACTOR.redact_text(once) == once


def test_checkpoints_are_masked_before_any_saver_sees_them() -> None:
    """`redact_checkpoints`: the text channel values a saver keeps outside its serializer
    (LangGraph's PostgresSaver inlines them in JSONB) and the metadata are masked
    before `put`; the checkpoint LangGraph holds in memory is not changed."""
    seen: list[tuple[Any, Any]] = []

    class Recording(InMemorySaver):
        def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
            seen.append((checkpoint, metadata))
            return super().put(config, checkpoint, metadata, new_versions)

    saver = redact_checkpoints(Recording(), REDACTOR)
    assert isinstance(saver.serde, RedactingSerializer)
    checkpoint: Any = {
        "v": 4,
        "id": "c1",
        "ts": "2026-01-01T00:00:00+00:00",
        "channel_values": {"answer": f"key {GOOGLE}", "steps": 3, "messages": ["m"]},
        "channel_versions": {},
        "versions_seen": {},
    }
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    saver.put(config, checkpoint, {"source": "input", "note": f"key {STRIPE}"}, {})
    ((stored, metadata),) = seen
    assert stored["channel_values"] == {
        "answer": "key [REDACTED:google_api_key]",
        "steps": 3,
        "messages": ["m"],
    }
    assert metadata["note"] == "key [REDACTED:stripe_access_key]"
    assert checkpoint["channel_values"]["answer"] == f"key {GOOGLE}"


def test_log_records_exceptions_are_redacted_too(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tierflow.test.redact.exc")
    logger.addFilter(RedactingLogFilter())
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            try:
                raise PermissionError(f"refused key {STRIPE}")
            except PermissionError:
                logger.exception("login failed with %s", f"password={RESULT_SECRET}")
    finally:
        logger.filters.clear()
    assert STRIPE not in caplog.text and RESULT_SECRET not in caplog.text
    assert "refused key [REDACTED:stripe_access_key]" in caplog.text


# --- the caller's answer ----------------------------------------------------------------

RESET_LINK = "https://x.example/reset?token=abc123"


def test_an_answer_reaches_the_caller_whole_and_is_stored_masked(
    scripted_agent: Callable[..., Scripted], tmp_path: Path
) -> None:
    """The runner reads the answer from the run's in-memory state, not from the
    (masked) checkpoint: a link with `token=` reaches the user as it was written."""
    db = tmp_path / "runs.db"
    policy = Policy(grants=(Grant(holder="agent:test_agent", scopes=frozenset()),))
    scripted = scripted_agent([Turn(text=f"Reset it here: {RESET_LINK}")], policy=policy)
    report = Runner(scripted.agent, db=db).run("reset my password", "t")
    assert report.answer == f"Reset it here: {RESET_LINK}"
    masked = f"Reset it here: https://x.example/reset?token={MASK}"
    row = RunsTable(db).get("t")
    assert row is not None and row["answer"] == masked
    with open_sqlite(db) as store:
        values = scripted.agent.compile(checkpointer=store).get_state(thread("t")).values
    assert values["answer"] == masked
    assert "abc123" not in repr(values)
    assert [name for name, data in file_bytes(db).items() if b"abc123" in data] == []


def file_bytes(db: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in files_of(db)}


def test_a_masks_kind_label_is_not_read_as_a_sensitive_name() -> None:
    """Found by hypothesis: `[REDACTED:stripe_access_key] :0` masked again must stay —
    the label ends in `access_key`, which before `:0` looked like a name and its value."""
    once = REDACTOR.redact_text("sk_live_4eC39HqLyjWDarjtT1zdp7dcXq81hPLMxT0aYv3N :0")
    assert once == "[REDACTED:stripe_access_key] :0"
    assert REDACTOR.redact_text(once) == once
    # A real name and value beside a mask are still masked.
    assert REDACTOR.redact_text(f"{once} api_key=hunter2hunter2") == f"{once} api_key=[REDACTED]"
