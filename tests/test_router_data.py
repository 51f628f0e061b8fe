"""Reading labelled routing files, and the labelled data the other router tests use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tierflow.errors import RoutingDataError
from tierflow.routing.offline.data import RoutingData, load_routing_csv

ROUTING = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing"


def synthetic(n: int = 120, seed: int = 0) -> RoutingData:
    """Integrals are hard (the strong tier wins), capitals easy (both tiers are right)."""
    rng = np.random.default_rng(seed)
    prompts, weak, strong = [], [], []
    for i in range(n):
        if i % 2:
            prompts.append(f"Compute the definite integral of x^{i} sin(x) from 0 to {i}.")
            weak.append(int(rng.random() < 0.1))
            strong.append(int(rng.random() < 0.9))
        else:
            prompts.append(f"What is the capital of country number {i}?")
            weak.append(1)
            strong.append(1)
    return RoutingData(
        prompts=prompts,
        weak_correct=np.array(weak, dtype=np.int64),
        strong_correct=np.array(strong, dtype=np.int64),
        columns={"topic": ["calculus" if i % 2 else "geography" for i in range(n)]},
    )


def mmlu_sample(rows: int, seed: int = 0) -> RoutingData:
    """A seeded subsample of the shared MMLU file (skips when the file is absent)."""
    path = ROUTING / "mmlu.csv"
    if not path.is_file():
        pytest.skip(f"{path} is not there")
    data = load_routing_csv(path)
    picked = np.random.default_rng(seed).choice(len(data), size=rows, replace=False)
    return data.subset(np.sort(picked))


# --- reading labelled files -------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_labels_lengths_and_other_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "subject,prompt,weak_correct,strong_correct,weak_response_chars,strong_response_chars\n"
        'algebra,"Solve x + 1 = 2,\nthen explain.",0,1,40,400\n'
        "history,Who won?,1,1,8,12\n",
    )
    data = load_routing_csv(path)
    assert data.prompts == ["Solve x + 1 = 2,\nthen explain.", "Who won?"]
    assert data.weak_correct.tolist() == [0, 1]
    assert data.strong_correct.tolist() == [1, 1]
    assert data.weak_output_tokens is not None and data.strong_output_tokens is not None
    assert data.weak_output_tokens.tolist() == [10.0, 2.0]  # four characters a token
    assert data.strong_output_tokens.tolist() == [100.0, 3.0]
    assert data.column("subject") == ["algebra", "history"]
    assert data.subset([1]).prompts == ["Who won?"]


def test_another_text_column(tmp_path: Path) -> None:
    path = write(tmp_path, "question,weak_correct,strong_correct\nWhy?,0,1\n")
    assert load_routing_csv(path, text_column="question").prompts == ["Why?"]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("", ["empty"]),
        ("prompt,weak_correct,strong_correct\n", ["no rows"]),
        ("prompt,weak_correct\nhi,1\n", ["missing column", "strong_correct"]),
        ("text,weak_correct,strong_correct\nhi,1,0\n", ["missing column", "--text-column"]),
        (
            "prompt,weak_correct,strong_correct\nhi,1,0\nho,yes,0\n",
            ["row 3", "weak_correct", "'yes'"],
        ),
        ("prompt,weak_correct,strong_correct\nhi,1,2\n", ["row 2", "strong_correct", "'2'"]),
        ("prompt,weak_correct,strong_correct\nhi,1,\n", ["row 2", "expected 0 or 1"]),
        (
            "prompt,weak_correct,strong_correct,weak_response_chars\nhi,1,0,-3\n",
            ["weak_response_chars", "'-3'"],
        ),
    ],
)
def test_malformed_files_are_clear_errors(tmp_path: Path, text: str, fragments: list[str]) -> None:
    with pytest.raises(RoutingDataError) as caught:
        load_routing_csv(write(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_missing_file_and_unknown_group_column(tmp_path: Path) -> None:
    with pytest.raises(RoutingDataError, match="no such file"):
        load_routing_csv(tmp_path / "absent.csv")
    with pytest.raises(RoutingDataError, match="no column 'subject'"):
        synthetic(4).column("subject")
