"""Redaction: declared patterns and sensitive names are masked before anything is
stored. The end-to-end test puts a secret in a tool argument and a tool result, writes
the audit log, the side-effect record and a checkpoint, then scans the files' bytes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import START, MessagesState, StateGraph

from tierflow.checkpoints import SqliteStore
from tierflow.checkpoints.database import acquire_sqlite
from tierflow.errors import SpecError
from tierflow.governance.approval import ApprovalRule
from tierflow.governance.audit import AuditLog, audit
from tierflow.governance.governor import GovernedCall, Governor
from tierflow.governance.permissions import Grant
from tierflow.governance.policy import Policy
from tierflow.governance.redact import MASK, RedactingLogFilter, RedactingSerializer, Redactor
from tierflow.governance.side_effects import RecordedResult

REDACTOR = Redactor()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("key sk-proj-AbCdEf0123456789xyz here", f"key {MASK} here"),
        ("Authorization: Bearer eyJhbGciOi.abc", f"Authorization: Bearer {MASK}"),
        ("authorization: Token 0123456789", f"authorization: Token {MASK}"),
        ("login with password=hunter2&user=al", f"login with password={MASK}&user=al"),
        ('{"db_password": "p4ss"} was sent', f'{{"db_password": "{MASK}"}} was sent'),
        ("postgresql://app:s3cret@db:5432/x", f"postgresql://app:{MASK}@db:5432/x"),
        ("AKIAIOSFODNN7EXAMPLE", MASK),
        ("order 1042 shipped, 3 tokens used", "order 1042 shipped, 3 tokens used"),
        ("max_tokens: 800", "max_tokens: 800"),
    ],
)
def test_text_patterns(text: str, masked: str) -> None:
    assert REDACTOR.redact_text(text) == masked


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
    assert gov.execute_tool(call, lambda: RecordedResult(True, result)) is not None
    assert gov.side_effects.recorded("tf-1") is not None
    failing = GovernedCall("login", "accounts:write", arguments, 1, "c2")
    failed = gov.execute_tool(failing, lambda: RecordedResult(False, f"rejected: {result}"))
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
