"""The run context: what one run brings to the one compiled graph of its agent.

LangGraph hands it to every node (`StateGraph(context_schema=RunContext)`, then
`graph.invoke(input, config, context=RunContext(...))`), in the spirit of
pydantic_graph's `deps`: the graph is compiled once per agent per process and serves
every run, resume and principal; nothing run-specific is captured at compile time.

- `principal`: who the run acts for. JSON (`context={"principal": {"id": "ana"}}` works
  over `langgraph dev`'s HTTP API too); recorded with the thread on its first request,
  so a later run of the thread can't act for someone else.
- `governance`: where a governed run keeps its budgets, ledger, audit, approvals and
  side effects, and the process's capacity. Python only (never from JSON: an HTTP
  caller must not pick the ledger it is charged on). Absent: the run store the graph
  checkpoints to when it is tierflow's (SQLite file or Postgres), else the process's
  in-memory store.
- `resources`: the run's resources, for the tools that declare them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.constants import CONFIG_KEY_CHECKPOINTER
from langgraph.runtime import get_runtime
from pydantic import BaseModel, ConfigDict, Field, InstanceOf
from pydantic.json_schema import SkipJsonSchema

from tierflow.errors import TierflowError
from tierflow.governance.policy import Policy, Principal
from tierflow.store.targets import MEMORY, URL_SCHEMES

if TYPE_CHECKING:  # the governor and its tables load with the first governed run
    from tierflow.governance.gate import WaitEvent
    from tierflow.governance.governor import Governor
    from tierflow.governance.limits import Capacity
    from tierflow.governance.ungoverned import ToolGovernor

# (thread, event): a call of that thread started or stopped waiting for a slot.
OnThreadWait = Callable[[str, "WaitEvent"], None]


class Governance:
    """A governed run's handles: the run store holding its governance tables (a SQLite
    path, a `postgresql://` URL, or `MEMORY`), the process's `Capacity` (concurrency caps
    and rate limits: one per process), and who hears when a call waits for a slot.

    It holds the store open for as long as it lives: every governed call makes several
    transactions, and a store nobody holds would be opened (and its file checked) for
    each of them."""

    def __init__(
        self,
        db: str | Path,
        *,
        capacity: Capacity | None = None,
        on_wait: OnThreadWait | None = None,
    ) -> None:
        from tierflow.store import database

        keep = isinstance(db, Path) or db.startswith(URL_SCHEMES) or db == MEMORY
        self.db: str | Path = db if keep else Path(db)
        self.capacity = capacity
        self.on_wait = on_wait
        held = database.acquire(self.db)
        weakref.finalize(self, held.release)

    def __repr__(self) -> str:
        return f"Governance(db={str(self.db)!r})"


class RunContext(BaseModel):
    """LangGraph's runtime context of a tierflow agent (see the module docstring)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    principal: Principal | None = None
    governance: SkipJsonSchema[InstanceOf[Governance] | None] = None
    resources: SkipJsonSchema[dict[str, Any]] = Field(default_factory=dict)


def run_context() -> RunContext:
    """The context of the run the calling node serves (an empty one when none was
    given, or a plain dict LangGraph did not coerce)."""
    try:
        context = get_runtime().context
    except (RuntimeError, KeyError, AttributeError):  # called outside a run
        return RunContext()
    if isinstance(context, RunContext):
        return context
    if isinstance(context, Mapping):
        return RunContext.model_validate(dict(context))
    return RunContext()


def thread_of(config: RunnableConfig) -> str:
    return str(config.get("configurable", {}).get("thread_id", ""))


def db_of(config: RunnableConfig) -> str | Path:
    """The run store a governed run without `governance` keeps its tables in: the one
    its checkpoints go to when that is tierflow's, else the process's memory."""
    saver = config.get("configurable", {}).get(CONFIG_KEY_CHECKPOINTER)
    url = getattr(saver, "url", None)
    if isinstance(url, str) and url.startswith(URL_SCHEMES):  # tierflow's PostgresStore
        return url
    path = getattr(saver, "path", None)
    if isinstance(path, Path) and getattr(saver, "db", None) is not None:  # SqliteStore
        return path
    return MEMORY


# A config key a workflow sets for an agent step with a budget: the ledger key its model
# calls are charged to besides the run's (`governance.budget.step_key`).
STEP_BUDGET = "tierflow_step_budget"


def store_of(config: RunnableConfig) -> str | Path:
    """The run store of the run `config` serves: the context's governance, else the
    store its checkpoints go to."""
    governance = run_context().governance
    return governance.db if governance is not None else db_of(config)


def principal_of(context: RunContext, recorded: Mapping[str, Any] | None) -> Principal | None:
    """Who the run acts for: the context's principal, else the one recorded with the
    thread. A run can't change who a thread acts for."""
    kept = None if recorded is None else Principal.model_validate(recorded)
    given = context.principal
    if given is not None and kept is not None and given != kept:
        raise TierflowError(
            f"the thread acts for principal {kept.id!r}; a run can't change who it acts "
            f"for (given {given.id!r})"
        )
    return given or kept


class Governing:
    """How the nodes of one compiled agent reach the governor of the run they serve.

    Built once per compiled graph from the agent's declaration (its `policy` and name);
    everything run-specific — thread, principal, store, capacity — is read from the run's
    config and context when a node asks. The capacity of runs that bring none is this
    graph's own, one per process (the graph is compiled once per agent per process)."""

    def __init__(self, policy: Policy | None, agent: str) -> None:
        self.policy = policy
        self.agent = agent
        self._capacity: Capacity | None = None

    @property
    def governed(self) -> bool:
        return self.policy is not None

    def default_capacity(self) -> Capacity:
        from tierflow.governance.limits import Capacity

        assert self.policy is not None
        if self._capacity is None:
            self._capacity = Capacity(self.policy.limits)
        return self._capacity

    def governor(
        self, config: RunnableConfig, recorded_principal: Mapping[str, Any] | None
    ) -> Governor | None:
        """The run's governor (None for an agent without a policy)."""
        if self.policy is None:
            return None
        from tierflow.governance.governor import Governor

        context = run_context()
        governance = context.governance
        return Governor(
            self.policy,
            governance.db if governance is not None else db_of(config),
            agent=self.agent,
            thread=thread_of(config),
            principal=principal_of(context, recorded_principal),
            capacity=(governance.capacity if governance is not None else None)
            or self.default_capacity(),
            extra_budgets=_step_budget(config),
        )

    def tool_governor(
        self, config: RunnableConfig, recorded_principal: Mapping[str, Any] | None
    ) -> ToolGovernor:
        """The governor the run's tool calls go through: the run's `Governor`, or an
        `Ungoverned` for an agent without a policy (one path in `act`), which still
        records side-effecting calls in the run store."""
        from tierflow.governance.ungoverned import Ungoverned

        governor = self.governor(config, recorded_principal)
        return governor or Ungoverned(self.store_of(config), thread_of(config))

    def store_of(self, config: RunnableConfig) -> str | Path:
        return store_of(config)

    def wait_reporter(self, config: RunnableConfig) -> Callable[[WaitEvent], None] | None:
        governance = run_context().governance
        on_wait = None if governance is None else governance.on_wait
        if on_wait is None:
            return None
        thread = thread_of(config)

        def report(event: WaitEvent) -> None:
            on_wait(thread, event)

        return report


def _step_budget(config: RunnableConfig) -> tuple[str, ...]:
    key = config.get("configurable", {}).get(STEP_BUDGET)
    return (str(key),) if key else ()
