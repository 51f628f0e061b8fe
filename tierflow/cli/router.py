"""`tierflow router …`: train the learned router on labelled data, and evaluate it.

`tierflow.cli.app` mounts this sub-app. Every expected failure is a `TierflowError`: one
line, exit status 1 (a command line that does not parse is a usage error, exit 2:
`tierflow.cli.EXIT_CODES`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tierflow.cli.options import JsonOption
from tierflow.errors import TierflowError

if TYPE_CHECKING:
    from tierflow.models.price import Price

router_app = typer.Typer(
    no_args_is_help=True,
    help="Train the learned router on labelled data, and measure routers.",
)
out = Console(highlight=False)

DataArgument = Annotated[
    Path,
    typer.Argument(
        metavar="DATA.csv",
        help="Labelled requests: prompt, weak_correct, strong_correct (0/1) [, *_response_chars].",
    ),
]
TextColumn = Annotated[
    str, typer.Option("--text-column", help="The column holding the request's text.")
]
StrongPrice = Annotated[
    str,
    typer.Option(
        "--strong-price",
        metavar="IN,CACHED,OUT",
        help="USD per million tokens of the strong tier (default: the example's reasoning tier).",
    ),
]
WeakPrice = Annotated[
    str,
    typer.Option(
        "--weak-price",
        metavar="IN,CACHED,OUT",
        help="USD per million tokens of the weak tier (default: the example's fast tier).",
    ),
]
OutputTokens = Annotated[
    float,
    typer.Option(
        "--output-tokens",
        help="Tokens per answer where the data records no answer lengths.",
    ),
]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the folds and the random router.")]


def parse_price(text: str, option: str) -> Price:
    """`"1.75,0.175,14"` → Price(input=1.75, cached_input=0.175, output=14)."""
    from tierflow.models.price import Price

    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3:
        raise TierflowError(
            f"{option} takes three numbers, USD per million input, cached input and output "
            f"tokens (e.g. 1.75,0.175,14), got {text!r}"
        )
    return Price(input=values[0], cached_input=values[1], output=values[2])


def _pricing(weak_price: str, strong_price: str, output_tokens: float) -> Any:
    from tierflow.routing.pricing import Pricing

    if output_tokens < 0:
        raise TierflowError("--output-tokens must be 0 or more")
    return Pricing(
        weak=parse_price(weak_price, "--weak-price"),
        strong=parse_price(strong_price, "--strong-price"),
        output_tokens=output_tokens,
    )


def _train_extra(command: str) -> None:
    """One line, not a traceback, when scikit-learn or scipy (`tierflow[train]`) is
    missing: training and cross-validation need them; a trained router does not."""
    try:
        import sklearn  # noqa: F401 — and scipy, which it imports
    except ImportError as error:
        raise TierflowError(
            f"tierflow router {command} needs tierflow[train] ({error.name} is missing)"
        ) from None


DEFAULT_WEAK = "2.00,0.50,8.00"
DEFAULT_STRONG = "1.75,0.175,14.00"


@router_app.command("train")
def train(
    data: DataArgument,
    out_path: Annotated[Path, typer.Option("--out", metavar="ROUTER.json", help="Where to save.")],
    text_column: TextColumn = "prompt",
    strong_share: Annotated[
        float | None,
        typer.Option("--strong-share", help="Set the threshold for this share of strong calls."),
    ] = None,
    quality: Annotated[
        float,
        typer.Option(
            "--quality",
            help="Else: the cheapest threshold reaching this ratio of the strong tier's accuracy.",
        ),
    ] = 0.95,
    weak_tier: Annotated[str, typer.Option("--weak-tier", help="Name of the weak tier.")] = "fast",
    strong_tier: Annotated[
        str, typer.Option("--strong-tier", help="Name of the strong tier.")
    ] = "reasoning",
    weak_price: WeakPrice = DEFAULT_WEAK,
    strong_price: StrongPrice = DEFAULT_STRONG,
    output_tokens: OutputTokens = 256.0,
    seed: Seed = 0,
) -> None:
    """Train the learned router on DATA and save it as JSON (no pickle)."""
    _train_extra("train")
    from tierflow.routing.offline.data import load_routing_csv
    from tierflow.routing.offline.training import Target, train_learned_router

    labelled = load_routing_csv(data, text_column)
    target = Target(
        share=strong_share,
        quality=quality,
        pricing=_pricing(weak_price, strong_price, output_tokens),
    )
    router, calibration = train_learned_router(
        labelled, target, weak=weak_tier, strong=strong_tier, seed=seed
    )
    router.save(out_path)
    out.print(
        f"trained on {len(labelled)} requests → [bold]{out_path}[/] "
        f"({router.scorer.features.width} features)"
    )
    out.print(
        f"threshold {calibration.threshold:+.4f} ({calibration.method}): on out-of-fold "
        f"scores {calibration.strong_share:.1%} strong calls, accuracy "
        f"{calibration.accuracy:.1%}, PGR {calibration.pgr:.2f}"
    )


@router_app.command("eval")
def evaluate(
    data: DataArgument,
    router_path: Annotated[
        Path | None,
        typer.Option(
            "--router",
            metavar="ROUTER.json",
            help="Evaluate this trained router on all of DATA (default: cross-validate).",
        ),
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            "--split", metavar="random|group:COLUMN", help="How cross-validation splits DATA."
        ),
    ] = "random",
    as_json: JsonOption = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", metavar="FILE.png", help="Draw the PGR curves.")
    ] = None,
    text_column: TextColumn = "prompt",
    weak_price: WeakPrice = DEFAULT_WEAK,
    strong_price: StrongPrice = DEFAULT_STRONG,
    output_tokens: OutputTokens = 256.0,
    folds: Annotated[int, typer.Option("--folds", help="Cross-validation folds.")] = 5,
    seed: Seed = 0,
) -> None:
    """Measure the learned router beside a random and a prompt-length router."""
    _train_extra("eval")
    from tierflow.routing.learned import LearnedRouter
    from tierflow.routing.offline.data import load_routing_csv
    from tierflow.routing.offline.evaluate import evaluate_routers
    from tierflow.routing.offline.plot import plot_pgr, pyplot

    if plot is not None:
        pyplot()  # fail before the evaluation, not after it
    if router_path is not None and split != "random":
        raise TierflowError(
            "--split chooses the cross-validation folds; with --router the router is "
            "evaluated on all of DATA"
        )
    pricing = _pricing(weak_price, strong_price, output_tokens)
    router = LearnedRouter.load(router_path) if router_path is not None else None
    labelled = load_routing_csv(data, text_column)
    result = evaluate_routers(
        labelled, router=router, split=split, folds=folds, seed=seed, pricing=pricing
    )
    report = {"data": str(data), **result.report}
    if plot is not None:
        plot_pgr(result.curves, plot, f"{data.name}: {report['evaluation']}")
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        _print_evaluation(data, report, plot)


def _print_evaluation(data: Path, report: dict[str, Any], plot: Path | None) -> None:
    out.print(
        f"{data} · {report['n']} requests · {report['evaluation']} · weak "
        f"{report['weak_accuracy']:.1%}, strong {report['strong_accuracy']:.1%}"
    )
    out.print(metrics_table(report["routers"]))
    out.print(
        f"[dim]saving: share of the always-strong cost (${report['always_strong_usd']:.4f}; "
        f"always-weak ${report['always_weak_usd']:.4f}) saved at the strong share that "
        f"reaches 95 % of the strong tier's accuracy. Output tokens: "
        f"{report['pricing']['output_tokens']}.[/]"
    )
    if plot is not None:
        out.print(f"PGR curves → {plot}")


def metrics_table(routers: dict[str, dict[str, Any]]) -> Table:
    table = Table("router", "APGR", "CPT(50%)", "CPT(80%)", "strong @95%", "saving @95%")
    for name, m in routers.items():
        table.add_row(
            name,
            f"{m['apgr']:.3f}",
            _percent(m["cpt50"]),
            _percent(m["cpt80"]),
            _percent(m["strong_share_at_95"]),
            _percent(m["saving_at_95"]),
        )
    return table


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"
