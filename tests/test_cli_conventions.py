"""The `tierflow` command's conventions for scripts: one line on stderr for every
failure, an exit code per final status (the README's table), exactly one JSON object
under `--json`, the exact command that continues a paused or stopped run."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli, Result, one_line_error

from tierflow.cli import EXIT_CODES
from tierflow.cli.console import resume_command

ROOT = Path(__file__).parent.parent
AGENTS = Path(__file__).parent / "agents"
CRASHY = str(AGENTS / "crashy.py")
REVIEWED = str(AGENTS / "reviewed.py")
GOVERNED = str(AGENTS / "governed.py")
EXAMPLE = str(ROOT / "examples" / "support_desk.py")
LONG_TASK = "Please run the long task."

# Reaches `Limits.max_steps` (2): every turn calls a tool again, none answers.
LOOPING_AGENT = """
from tierflow import Agent, Limits, Price, Scenario, ScriptedChatModel, Tier, Turn, tool


@tool
def poke() -> str:
    \"\"\"Poke once more.\"\"\"
    return "poked"


SCRIPT = ScriptedChatModel(
    scenarios=(Scenario(match="", turns=tuple(Turn(calls=(("poke", {}),)) for _ in range(4))),)
)
PRICE = Price(input=1.0, cached_input=0.1, output=2.0)
agent = Agent(
    name="looping",
    instructions="Poke.",
    tiers=(
        Tier(name="fast", model=SCRIPT, price=PRICE),
        Tier(name="reasoning", model=SCRIPT, price=PRICE),
    ),
    tools=(poke,),
    limits=Limits(max_steps=2),
)
"""


def usage_error(result: Result, *fragments: str) -> None:
    """Exit 2, nothing on stdout, one line on stderr naming the problem."""
    assert result.code == 2, result
    assert result.out == ""
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert result.err.startswith("error: "), result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in result.err, result.err


def one_object(stdout: str) -> dict[str, object]:
    """Stdout is exactly one JSON object on one line."""
    assert stdout.count("\n") == 1 and stdout.endswith("\n"), stdout
    document = json.loads(stdout)
    assert isinstance(document, dict)
    return document


def one_stderr_line(err: str, *fragments: str) -> None:
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in " ".join(err.split()), err


# --- usage errors: exit 2 -------------------------------------------------------------


DB = "--db=DB"  # the test's database, where the command takes one


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("bogus", DB), ("no such command 'bogus'",)),
        (("run", CRASHY, DB), ("missing option '--input'",)),
        (("run", CRASHY, "--input", "x", DB, "--bogus"), ("no such option: --bogus",)),
        (("run", CRASHY, DB, "--input"), ("'--input' requires an argument",)),
        (("draw", EXAMPLE, "--format", "jpeg"), ("'--format'", "'jpeg' is not one of")),
        (("budget", "set", "t", "--usd", "nan", DB), ("'--usd'", "finite", "(got nan)")),
        (("budget", "set", "t", "--usd", "inf", DB), ("'--usd'", "finite", "(got inf)")),
        (("budget", "set", "t", "--usd", "-1", DB), ("'--usd'", "0 or more", "(got -1)")),
        (("budget", "raise", "t", "--usd", "nan", DB), ("'--usd'", "finite")),
        (("prune", "--older-than", "nan", DB), ("'--older-than'", "finite")),
        (("prune", "--older-than", "-1", DB), ("'--older-than'", "0 or more")),
        (("run", CRASHY, DB, "--input", "caf\udc80"), ("--input: not valid UTF-8", "b'caf\\x80'")),
        (("run", CRASHY, DB, "--input=\udcff"), ("--input: not valid UTF-8",)),
        (("run", CRASHY, DB, "--input", "x", "--thread", "\udcff"), ("--thread: not valid",)),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    cli: Cli, db: str, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    usage_error(cli(*(f"--db={db}" if arg == DB else arg for arg in args)), *fragments)
    assert not Path(db).exists(), "nothing runs after a usage error"


def test_a_usage_error_under_json_stays_on_stderr(cli: Cli, db: str) -> None:
    usage_error(cli("run", CRASHY, "--json", "--bogus", "--db", db), "no such option: --bogus")


def test_a_bare_command_group_prints_its_help_and_exits_2(cli: Cli) -> None:
    bare = cli()
    assert bare.code == 2 and "Traceback" not in bare.err
    assert "Commands" in bare.out and "resume" in bare.out
    group = cli("budget")
    assert group.code == 2 and "raise" in group.out


def test_help_exits_0(cli: Cli) -> None:
    helped = cli("run", "--help")
    assert (helped.code, helped.err) == (0, "")
    assert "--input" in helped.out


@pytest.mark.slow
def test_raw_undecodable_bytes_in_an_argument_exit_2_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    result = subprocess.run(
        [sys.executable, "-m", "tierflow", "run", CRASHY, "--input", b"caf\xff", "--db", db],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == b""
    assert (
        result.stderr
        == b"error: --input: not valid UTF-8 text: b'caf\\xff' (see 'tierflow --help')\n"
    )
    assert not db.exists()


@pytest.mark.slow
def test_a_closed_stdout_is_exit_1_without_a_traceback() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader left before the command wrote a byte
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tierflow", "draw", EXAMPLE, "--format", "ascii"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 1
    assert result.stderr == b""


# --- a run's final status is its exit code ---------------------------------------------


def test_the_table_is_the_one_the_readme_documents() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| (\d+) \| `(\w+)` \|", readme, re.MULTILINE))
    assert {status: int(code) for code, status in rows.items()} == dict(EXIT_CODES)
    assert dict(EXIT_CODES) == {
        "done": 0,
        "failed": 1,
        "usage_error": 2,
        "refused": 3,
        "interrupted": 4,
        "budget_exceeded": 5,
        "thread_busy": 6,
        "cancelled": 130,
    }


@pytest.fixture
def looping(tmp_path: Path) -> str:
    path = tmp_path / "looping.py"
    path.write_text(LOOPING_AGENT, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
@pytest.mark.parametrize(
    ("agent", "request_text", "status"),
    [
        (CRASHY, LONG_TASK, "done"),
        (REVIEWED, "status of 7?", "interrupted"),
        (f"{GOVERNED}:tight", "hello", "budget_exceeded"),
        ("looping", "poke until told", "failed"),
    ],
)
def test_run_exits_with_the_code_of_its_status(
    cli: Cli, db: str, looping: str, as_json: bool, agent: str, request_text: str, status: str
) -> None:
    target = looping if agent == "looping" else agent
    flags = ["--json"] if as_json else []
    result = cli("run", target, "--input", request_text, "--thread", "t", "--db", db, *flags)
    assert result.code == EXIT_CODES[status], result
    rows = json.loads(cli("runs", "--db", db, "--json").out)
    assert [(r["thread"], r["status"]) for r in rows] == [("t", status)]
    if as_json:
        report = one_object(result.out)
        assert report["status"] == status
        if status == "failed":  # the step limit ends a run `failed`: exit 1
            assert "step limit reached: 2 model steps" in str(report["error"])
    else:
        assert f"{status} · thread t" in result.out


def test_resume_exits_with_the_code_of_its_status(cli: Cli, db: str) -> None:
    assert cli("run", REVIEWED, "--input", "status of 7?", "--thread", "r", "--db", db).code == 4
    refused = cli("resume", "r", "--db", db, "--json", "--reject", "too loud")
    assert refused.code == EXIT_CODES["refused"] == 3, refused
    assert one_object(refused.out)["status"] == "refused"
    again = cli("resume", "r", "--db", db)  # a finished thread reports its status again
    assert again.code == 3 and "refused · thread r" in again.out
    assert cli("run", REVIEWED, "--input", "status of 7?", "--thread", "a", "--db", db).code == 4
    approved = cli("resume", "a", "--db", db, "--approve")
    assert approved.code == 0, approved


# --- --json: exactly one object, failures included ----------------------------------------


def test_a_failed_run_under_json_is_one_object_and_one_line(cli: Cli, db: str) -> None:
    result = cli("run", CRASHY, "--input", "unscripted", "--thread", "f", "--db", db, "--json")
    assert result.code == 1
    document = one_object(result.out)
    assert (document["thread"], document["status"], document["error_type"]) == (
        "f",
        "failed",
        "RunFailed",
    )
    assert "no scenario matches" in str(document["error"])
    one_stderr_line(result.err, "thread 'f' failed", "no scenario matches")
    resumed = cli("resume", "f", "--db", db, "--json")
    assert resumed.code == 1
    assert one_object(resumed.out)["status"] == "failed"


@pytest.mark.parametrize(
    ("args", "error_type", "fragment"),
    [
        (("run", "missing.py", "--input", "x", "--thread", "m"), "LoadError", "no such file"),
        (("run", CRASHY, "--input", "  ", "--thread", "m"), "TierflowError", "request is empty"),
        (("run", CRASHY, "--input", "x", "--thread", "m", "--stream"), "TierflowError", "--stream"),
        (("resume", "m"), "CheckpointError", "no database"),
        (("resume", "m", "--approve", "--reject", "no"), "TierflowError", "choose one of"),
    ],
)
def test_any_tierflow_error_under_json_is_one_object(
    cli: Cli, db: str, args: tuple[str, ...], error_type: str, fragment: str
) -> None:
    result = cli(*args, "--db", db, "--json")
    assert result.code == 1
    document = one_object(result.out)
    assert (document["thread"], document["status"], document["error_type"]) == (
        "m",
        "failed",
        error_type,
    )
    assert fragment in str(document["error"])
    one_stderr_line(result.err, fragment)


def test_an_edit_file_that_is_not_utf8_is_one_line(cli: Cli, db: str, tmp_path: Path) -> None:
    answer = tmp_path / "answer.txt"
    answer.write_bytes(b"caf\xe9")
    one_line_error(cli("resume", "t", "--db", db, "--edit", str(answer)), "is not UTF-8 text")


def test_a_paused_thread_resumed_without_a_decision_is_one_object(cli: Cli, db: str) -> None:
    cli("run", REVIEWED, "--input", "status of 7?", "--thread", "p", "--db", db)
    result = cli("resume", "p", "--db", db, "--json")
    assert result.code == 1
    assert "waiting for a review" in str(one_object(result.out)["error"])


def test_ctrl_c_before_the_run_starts_is_130_without_a_resume_hint(
    cli: Cli, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("tierflow.cli.run.load_declared", interrupted)
    result = cli("run", CRASHY, "--input", "x", "--thread", "k", "--db", db, "--json")
    assert result.code == 130
    assert one_object(result.out)["status"] == "cancelled"
    one_stderr_line(result.err, "interrupted by Ctrl-C before the run started")
    assert "tierflow resume" not in result.err


# --- a paused run says what it holds and how to continue --------------------------------


def continue_commands(output: str) -> list[list[str]]:
    """The `tierflow resume …` command lines printed, split as a shell would."""
    return [
        shlex.split(line.strip())
        for line in output.splitlines()
        if line.strip().startswith("tierflow resume ")
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["steps", "stream"])
def test_a_guard_hold_shows_the_answer_and_the_exact_commands(
    cli: Cli, tmp_path: Path, stream: bool
) -> None:
    db = str(tmp_path / "my runs.db")  # a space: the commands must quote it
    flags = ["--stream"] if stream else []
    result = cli("run", REVIEWED, "--input", "status of 7?", "--thread", "g", "--db", db, *flags)
    assert result.code == 4, result
    text = " ".join(result.out.split())
    assert 'held for review (guard tone): the answer "Order 7 SHIPPED" — the answer shouts' in text
    commands = continue_commands(result.out)
    resume = ["tierflow", "resume", "g", "--db", db]
    assert commands == [
        [*resume, "--approve"],
        [*resume, "--reject", "REASON"],
        [*resume, "--edit", "FILE"],
    ]
    approved = cli(*commands[0][1:])  # the printed command, run as printed
    assert approved.code == 0, approved
    assert "done · thread g" in approved.out and "Order 7 SHIPPED" in approved.out


@pytest.mark.parametrize("stream", [False, True], ids=["steps", "stream"])
def test_a_held_tool_call_shows_its_name_and_arguments_and_the_exact_commands(
    cli: Cli, db: str, stream: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVERNED_LOG", str(tmp_path / "refunds.log"))
    flags = ["--stream"] if stream else []
    request = "Please refund order 7."
    result = cli("run", GOVERNED, "--input", request, "--thread", "h", "--db", db, *flags)
    assert result.code == 4, result
    assert (
        "held for review (approval): refund(order_id=7, amount_usd=300.0) — refunds:write "
        "needs approval: amount_usd 300 is above 200"
    ) in " ".join(result.out.split())
    resume = ["tierflow", "resume", "h", "--db", db]
    # An edit replaces an answer; a held tool call has none to replace.
    assert continue_commands(result.out) == [
        [*resume, "--approve"],
        [*resume, "--reject", "REASON"],
    ]
    rejected = cli(*continue_commands(result.out)[1][1:])
    assert rejected.code == 0, rejected
    assert not (tmp_path / "refunds.log").exists()


def test_budget_exceeded_says_how_to_continue(cli: Cli, db: str) -> None:
    result = cli("run", f"{GOVERNED}:tight", "--input", "hello", "--thread", "b", "--db", db)
    assert result.code == 5
    assert resume_command("b", db) in result.out


# --- audit of an unknown thread ---------------------------------------------------------


def test_audit_of_a_thread_without_rows_is_an_error(cli: Cli, db: str) -> None:
    assert cli("run", GOVERNED, "--input", "hello", "--thread", "known", "--db", db).code == 0
    assert cli("audit", "known", "--db", db).code == 0
    one_line_error(cli("audit", "ghost", "--db", db), "no audit rows for thread 'ghost'")
    one_line_error(cli("audit", "ghost", "--db", db, "--json"), "no audit rows for thread 'ghost'")
    everything = cli("audit", "--db", db, "--json")
    assert everything.code == 0 and json.loads(everything.out)


# --- Ctrl-C and a busy thread, in a real process ----------------------------------------


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """A `tierflow run` of crashy blocked inside its gate tool: (process, db, flag)."""
    db = str(tmp_path / "runs.db")
    flag = tmp_path / "gate.flag"
    env = {**os.environ, "CRASHY_GATE": str(flag), "CRASHY_LOG": str(tmp_path / "log.txt")}
    command = [sys.executable, "-m", "tierflow", "run", CRASHY, "--input", LONG_TASK]
    with subprocess.Popen(
        [*command, "--thread", "c", "--db", db, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        assert process.stdout is not None
        # Blocks until the gate tool runs, inside the `act` node of the third step.
        assert process.stdout.readline().strip() == "CRASHY_GATE_REACHED"
        assert flag.exists()
        yield process, db, flag
        if process.poll() is None:
            process.kill()


@pytest.mark.slow
def test_ctrl_c_exits_130_saying_how_to_resume_and_a_busy_thread_exits_6(
    cli: Cli, gated: tuple[subprocess.Popen[str], str, Path]
) -> None:
    process, db, _ = gated
    # While the run holds the thread, a second process can't resume it.
    busy = cli("resume", "c", "--db", db, "--json")
    assert busy.code == EXIT_CODES["thread_busy"] == 6, busy
    assert one_object(busy.out)["status"] == "thread_busy"
    one_stderr_line(busy.err, "thread 'c' is being run by pid")
    one_stderr_line(cli("resume", "c", "--db", db).err, "is being run by")

    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    stopped = one_object(out)
    assert (stopped["thread"], stopped["status"]) == ("c", "cancelled")
    one_stderr_line(err, "interrupted by Ctrl-C", f"continue it with: {resume_command('c', db)}")

    # Needs the runner to mark the run on KeyboardInterrupt (the lead's change).
    rows = json.loads(cli("runs", "--db", db, "--json").out)
    assert [(r["thread"], r["status"]) for r in rows] == [("c", "interrupted")]

    # The printed command continues it: the gate's flag exists now, so it opens.
    resumed = cli(*shlex.split(resume_command("c", db))[1:], "--json")
    assert resumed.code == 0, resumed
    report = one_object(resumed.out)
    assert (report["status"], report["answer"]) == ("done", "Finished: did a, did b, gate open.")
