"""Tracing a governed run: LangSmith sees what the store sees, masked.

With LangSmith tracing on (`LANGSMITH_TRACING=true`, or a `tracing_context`), LangChain
gives every run a `LangChainTracer` on a client that uploads inputs, outputs, errors
and metadata as they are. `RedactedTracing.callbacks()` is a tracer to put in the run's
config instead: its client (`langsmith.Client(anonymizer=…)`, endpoint, key and
project from the environment as usual) passes every run's inputs, outputs, error and
metadata through the policy's `Redactor` before they leave the process, and the tracer
(`MaskingTracer`) masks what the client doesn't: a model run's `serialized` manifest
(the model object's repr and settings) and its invocation parameters. Given in the
callbacks, it is the run's only `LangChainTracer`: LangChain adds the environment's own
only when the callbacks hold none (`langchain_core.callbacks.manager._configure`).
Token events are dropped by the client itself (`Client._filter_new_token_events`).

Uploads happen in the client's background thread; a run never waits for them.
`flush()` does, e.g. before a short-lived process exits — and so does the interpreter
at exit, for LangSmith's tracing thread is not a daemon. So an unreachable endpoint
must fail fast: the client retries a refused or timed-out connection not at all
(LangSmith's default: three times with backoff, for each of the three attempts it
makes per batch — about twelve seconds per batch added to a process's exit with no
network), and a busy server's 429 and 5xx answers as LangSmith does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.tracers.context import tracing_v2_callback_var
from langchain_core.tracers.langchain import LangChainTracer
from langchain_core.tracers.schemas import Run
from langsmith import Client
from langsmith.utils import LangSmithRetry, tracing_is_enabled

from tierflow.governance.redact import Redactor


class RedactedTracing:
    """LangSmith tracing masked by `redactor`: one client, a tracer per run."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._client: Client | None = None

    @property
    def enabled(self) -> bool:
        return bool(tracing_is_enabled()) or tracing_v2_callback_var.get() is not None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(anonymizer=self._masked, retry_config=_retries())
        return self._client

    def callbacks(self) -> list[BaseCallbackHandler]:
        """The run's callbacks: a masking tracer when tracing is on, else none (and
        then LangChain adds none either)."""
        if not self.enabled:
            return []
        ambient = tracing_v2_callback_var.get()  # `with tracing_v2_enabled(project_name=…)`
        project = ambient.project_name if ambient is not None else None
        return [MaskingTracer(project_name=project, client=self.client, redactor=self.redactor)]

    def flush(self) -> None:
        """Wait until every run traced so far is uploaded (or given up on)."""
        if self._client is not None:
            self._client.flush()

    def _masked(self, payload: dict[str, Any]) -> dict[str, Any]:
        masked: dict[str, Any] = self.redactor.redact(payload)
        return masked


def _retries() -> LangSmithRetry:
    """LangSmith's retries (`langsmith.client._default_retry_config`), none for a
    connection that is refused or times out."""
    return LangSmithRetry(
        total=3,
        connect=0,
        read=0,
        status_forcelist=[429, 500, 502, 503, 504, 408, 425],
        backoff_factor=0.5,
        allowed_methods=None,
        raise_on_redirect=False,
        raise_on_status=False,
        respect_retry_after_header=True,
    )


class MaskingTracer(LangChainTracer):
    """A `LangChainTracer` that masks a model run's `serialized` manifest and invocation
    parameters with `redactor` (its client masks inputs, outputs, error, metadata)."""

    def __init__(self, *args: Any, redactor: Redactor | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.redactor = redactor or Redactor()

    def copy_with_metadata_defaults(
        self, *, metadata: Mapping[str, str] | None = None, tags: list[str] | None = None
    ) -> LangChainTracer:
        copied = super().copy_with_metadata_defaults(metadata=metadata, tags=tags)
        if isinstance(copied, MaskingTracer):
            copied.redactor = self.redactor
        return copied

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Run:
        return super().on_chat_model_start(
            self.redactor.redact(serialized),
            messages,
            run_id=run_id,
            tags=tags,
            parent_run_id=parent_run_id,
            metadata=metadata,
            name=name,
            **self.redactor.redact(kwargs),
        )

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Run:
        return super().on_llm_start(
            self.redactor.redact(serialized),
            prompts,
            run_id=run_id,
            tags=tags,
            parent_run_id=parent_run_id,
            metadata=metadata,
            name=name,
            **self.redactor.redact(kwargs),
        )
