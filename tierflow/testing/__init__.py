"""Test helpers shipped with tierflow: a local OpenAI-compatible server, crash points.

from tierflow.testing import Fault, OpenAIServer, Reply, Usage

with OpenAIServer() as server:
    server.script("order #1007", Reply(calls=[("order_details", {"order_id": 1007})]),
                  Reply(text="It shipped."))
    server.push(Fault.http(429, retry_after=1))  # the first request is rate limited
    ...  # point ChatOpenAI or OPENAI_BASE_URL at server.url
    server.requests  # what the client sent, and what it was answered

The names load on first use: production code calls `tierflow.testing.faults` (crash
points for kill tests) without importing the server.
"""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.testing.replies import Fault, Reply, Usage
    from tierflow.testing.server import OpenAIServer, RecordedRequest

__all__ = ["Fault", "OpenAIServer", "RecordedRequest", "Reply", "Usage"]

__getattr__, __dir__ = lazy_names(
    __name__,
    __all__,
    {
        "tierflow.testing.replies": ("Fault", "Reply", "Usage"),
        "tierflow.testing.server": ("OpenAIServer", "RecordedRequest"),
    },
)
