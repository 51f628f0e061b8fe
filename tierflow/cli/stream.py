"""What `tierflow run --stream` shows while a run happens: the model's tokens as they
arrive, each tool call as the model starts it, retries, then every step's outcome.

It reads LangGraph's own stream modes — "messages" for tokens, "custom" for tierflow's
retry events, "updates" for the steps (printed by `StepPrinter`) — so what the CLI
shows is what a Python caller of `graph.stream(..., stream_mode=[...])` gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk
from rich.console import Console
from rich.markup import escape

from tierflow.cli.console import StepPrinter, short
from tierflow.graphs.names import MODEL_PREFIX, display
from tierflow.nodes.state import ModelCall


class StreamPrinter:
    """Pass `on_update` and `on_stream` to a `Runner`."""

    def __init__(self, console: Console, header: str | None = None) -> None:
        self.console = console
        self.header = header
        self.steps = StepPrinter(console)
        self._line: str | None = None  # the node whose tokens the current line shows
        self._streamed: set[str] = set()  # nodes whose answer text was already shown

    def on_update(self, node: str, update: Mapping[str, Any]) -> None:
        self._begin()
        if node.startswith(MODEL_PREFIX) and node in self._streamed and update.get("calls"):
            self._streamed.discard(node)
            if not any(isinstance(m, AIMessage) and m.tool_calls for m in update["messages"]):
                self._model_summary(node, update["calls"][0])
                return
        self.steps(node, update)

    def on_stream(self, mode: str, chunk: Any) -> None:
        self._begin(end_line=False)
        if mode == "messages":
            message, metadata = chunk
            node = str(metadata.get("langgraph_node", ""))
            if node.startswith(MODEL_PREFIX) and isinstance(message, AIMessage):
                self._tokens(node, message)
        elif mode == "custom" and isinstance(chunk, Mapping) and chunk.get("event") == "retry":
            self._end_line()
            tool = f" {chunk['tool']}" if chunk.get("tool") else ""  # a tool's, not a model's
            self.console.print(
                f"  [yellow]retry[/] {display(str(chunk['node']))}{escape(tool)} "
                f"{chunk['retry']}/{chunk['max_retries']} in {chunk['delay_s']:.2f}s: "
                f"[dim]{escape(short(str(chunk['reason'])))}[/]"
            )

    def _tokens(self, node: str, message: AIMessage) -> None:
        text = str(message.text)
        if text:
            if self._line != node:
                self._end_line()
                self.console.print(f"  [bold]{display(node)}[/] ", end="")
                self._line = node
            self.console.print(escape(text), end="", soft_wrap=True)
            self._streamed.add(node)
        # A streamed call's name arrives in its first fragment; a whole message has them all.
        names = (
            [c["name"] for c in message.tool_call_chunks if c.get("name")]
            if isinstance(message, AIMessageChunk)
            else [c["name"] for c in message.tool_calls]
        )
        for name in names:
            self._end_line()
            self.console.print(f"      [cyan]→[/] {escape(str(name))}")

    def _model_summary(self, node: str, call: ModelCall) -> None:
        usage = call["usage"]
        self.console.print(
            f"  [bold]{display(node)}[/] [dim]${call['cost_usd']:.5f} · "
            f"{usage['input_tokens']:,} in ({usage['cached_tokens']:,} cached) / "
            f"{usage['output_tokens']:,} out ({usage['reasoning_tokens']:,} reasoning)[/]"
        )

    def _begin(self, *, end_line: bool = True) -> None:
        if self.header is not None:
            self.console.print(self.header)
            self.header = None
        if end_line:
            self._end_line()

    def _end_line(self) -> None:
        if self._line is not None:
            self.console.print()
            self._line = None
