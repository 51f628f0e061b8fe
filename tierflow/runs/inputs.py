"""The requests of a JSONL file, as `tierflow batch`, `tierflow submit` and
`tierflow bench-routes` read `--inputs`: one object per line, `{"input": "..."}` with an
optional `"thread"` and `"principal"`; the first bad line is one error naming it."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierflow.errors import SpecError, TierflowError

if TYPE_CHECKING:  # governance loads when a line names a principal: `--help` stays light
    from tierflow.governance.policy import Principal

KEYS = ("input", "thread", "principal")
# Unicode categories a thread id may not hold: control and format characters (NUL, a
# newline, an escape, a zero-width joiner) and lone surrogates.
CONTROL = frozenset({"Cc", "Cf", "Cs"})


@dataclass(frozen=True)
class Request:
    """One request of a batch: its line in the inputs, its text, its thread, and who
    it acts for (None: nobody in particular)."""

    line: int
    text: str
    thread: str
    principal: Principal | None = None


def request_texts(path: Path) -> list[str]:
    """The requests' texts, for a command that takes only `"input"` on a line."""
    return [request.text for request in read_requests(path, prefix="request", keys=("input",))]


def read_requests(
    path: Path,
    *,
    prefix: str,
    principal: Principal | None = None,
    keys: tuple[str, ...] = KEYS,
) -> list[Request]:
    """The requests of a JSONL file: one object per line, `{"input": "..."}` with an
    optional `"thread"` (else `PREFIX-LINE`) and `"principal"` (an id, or an object
    `{"id", "tenant", "grants"}`; else `principal`). Blank lines are skipped. The
    first bad line raises a `TierflowError` naming it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TierflowError(f"--inputs: no such file: {path}") from None
    except OSError as error:
        raise TierflowError(f"--inputs: can't read {path}: {error.strerror}") from None
    requests: list[Request] = []
    lines: dict[str, int] = {}
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path} line {number}"
        request = _request(raw, where, prefix, principal, keys)
        if request.thread in lines:
            raise TierflowError(
                f"{where}: thread {request.thread!r} is also line {lines[request.thread]}'s"
            )
        lines[request.thread] = number
        requests.append(request)
    if not requests:
        raise TierflowError(f"--inputs: no requests in {path} (one JSON object per line)")
    return requests


def _request(
    raw: bytes, where: str, prefix: str, default: Principal | None, keys: tuple[str, ...]
) -> Request:
    number = int(where.rsplit(" ", 1)[1])
    try:
        item = json.loads(raw.decode("utf-8-sig"))  # a leading BOM, as Windows tools write
    except UnicodeDecodeError:
        raise TierflowError(f"{where}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise TierflowError(f"{where}: not JSON ({error.msg}, column {error.colno})") from None
    if not isinstance(item, dict):
        raise TierflowError(f'{where}: expected an object {{"input": "..."}}')
    unknown = sorted(set(item) - set(keys))
    if unknown:
        raise TierflowError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(keys)})")
    text, thread = item.get("input"), item.get("thread", f"{prefix}-{number}")
    if not isinstance(text, str) or not text.strip():
        raise TierflowError(f'{where}: "input" must be the request, a non-empty string')
    if not isinstance(thread, str) or not thread.strip():
        raise TierflowError(f'{where}: "thread" must be a non-empty string')
    if any(unicodedata.category(c) in CONTROL for c in thread):
        # `tierflow resume THREAD` could not be given it from a shell.
        raise TierflowError(f'{where}: "thread" {thread!r} holds a control character')
    return Request(number, text, thread, _principal(item.get("principal"), where, default))


def _principal(given: Any, where: str, default: Principal | None) -> Principal | None:
    if given is None:
        return default
    from tierflow.governance.policy import Principal

    try:
        if isinstance(given, str):
            return Principal(id=given)
        if isinstance(given, dict):
            return Principal.model_validate(given)
    except SpecError as error:
        raise TierflowError(f"{where}: {error}") from None
    raise TierflowError(f'{where}: "principal" must be an id or an object {{"id": ...}}')
