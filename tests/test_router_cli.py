"""`tierflow router train` and `tierflow router eval`, in process."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from conftest import Cli, one_line_error
from test_router_data import synthetic

from tierflow.routing import LearnedRouter

KEYS = {"apgr", "cpt50", "cpt80", "strong_share_at_95", "saving_at_95"}


@pytest.fixture
def data_csv(tmp_path: Path) -> Path:
    data = synthetic(160)
    path = tmp_path / "labelled.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["topic", "prompt", "weak_correct", "strong_correct"])
        for row in zip(
            data.column("topic"), data.prompts, data.weak_correct, data.strong_correct, strict=True
        ):
            writer.writerow(row)
    return path


def test_train_saves_a_router_that_eval_reads(cli: Cli, data_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "router.json"
    trained = cli("router", "train", str(data_csv), "--out", str(out), "--strong-share", "0.5")
    assert trained.code == 0, trained.err
    assert "trained on 160 requests" in trained.out
    assert "strong share 0.5" in trained.out
    router = LearnedRouter.load(out)
    assert (
        router.route("Compute the definite integral of x^2 from 0 to 1.", {})["tier"] == "reasoning"
    )

    result = cli("router", "eval", str(data_csv), "--router", str(out), "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["n"] == 160
    assert report["evaluation"] == "the given router on all rows"
    assert set(report["routers"]) == {"learned", "length", "random"}
    learned = report["routers"]["learned"]
    assert set(learned) >= KEYS
    assert learned["threshold"] == router.threshold
    assert learned["strong_share_at_threshold"] == pytest.approx(0.5, abs=0.05)
    assert learned["apgr"] > report["routers"]["random"]["apgr"]


def test_cross_validated_eval_json_shape(cli: Cli, data_csv: Path) -> None:
    result = cli("router", "eval", str(data_csv), "--split", "random", "--json", "--folds", "4")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["evaluation"] == "4-fold cross-validation, split random"
    for name in ("learned", "length", "random"):
        metrics = report["routers"][name]
        assert set(metrics) >= KEYS
        for key in ("cpt50", "cpt80", "strong_share_at_95"):
            assert 0.0 <= metrics[key] <= 1.0
        assert metrics["pgr_curve"][0] == [0.0, 0.0]
        assert metrics["pgr_curve"][-1] == [1.0, pytest.approx(1.0)]
    # The hard half is recognisable from its words: the learned router nearly an oracle.
    assert report["routers"]["learned"]["cpt50"] < 0.35
    assert report["routers"]["learned"]["apgr"] > report["routers"]["random"]["apgr"]
    assert report["pricing"]["weak"] == {"input": 2.0, "cached_input": 0.5, "output": 8.0}
    assert report["always_strong_usd"] > 0


def test_group_split_table_and_plot(cli: Cli, data_csv: Path, tmp_path: Path) -> None:
    plot = tmp_path / "pgr.png"
    result = cli(
        "router",
        "eval",
        str(data_csv),
        "--split",
        "group:topic",
        "--plot",
        str(plot),
        "--strong-price",
        "10,1,40",
        "--weak-price",
        "1,0.1,2",
    )
    assert result.code == 0, result.err
    assert "split group:topic" in result.out
    for header in ("APGR", "CPT(50%)", "CPT(80%)", "strong @95%", "saving @95%"):
        assert header in result.out
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_plot_without_matplotlib_is_a_clear_error(
    cli: Cli, data_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    result = cli("router", "eval", str(data_csv), "--plot", str(tmp_path / "x.png"), "--folds", "2")
    one_line_error(result, "--plot needs matplotlib", "pip install matplotlib")


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("", ["empty"]),
        ("prompt,weak_correct\nhi,1\n", ["missing column", "strong_correct"]),
        ("prompt,weak_correct,strong_correct\nhi,1,0.5\n", ["row 2", "expected 0 or 1", "'0.5'"]),
    ],
)
def test_train_on_malformed_data_fails_in_one_line(
    cli: Cli, tmp_path: Path, content: str, fragments: list[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    out = tmp_path / "router.json"
    one_line_error(cli("router", "train", str(path), "--out", str(out)), *fragments)
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--split", "group:subject"], ["no column 'subject'"]),
        (["--split", "sideways"], ["unknown split 'sideways'"]),
        (["--strong-price", "1,2"], ["--strong-price takes three numbers"]),
        (["--weak-price", "a,b,c"], ["--weak-price takes three numbers"]),
        (
            ["--router", "missing.json"],
            ["--split chooses", "with --router"],
        ),
    ],
)
def test_bad_eval_options_fail_in_one_line(
    cli: Cli, data_csv: Path, extra: list[str], fragments: list[str]
) -> None:
    args = ["router", "eval", str(data_csv), *extra]
    if "--router" in extra:
        args += ["--split", "group:topic"]
    one_line_error(cli(*args), *fragments)


def test_eval_with_a_missing_router_file(cli: Cli, data_csv: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    one_line_error(cli("router", "eval", str(data_csv), "--router", str(missing)), "no such file")
