"""Router strategies beyond the rules router: learned, LLM, composed; their training,
calibration and evaluation.

All implement the `Router` protocol of `tierflow.nodes.route` and can be an `Agent`'s
`router`. The names load on first use (`tierflow.lazy`): a trained learned router loads
and routes with numpy alone; training and evaluating it need scikit-learn and scipy
(`tierflow[train]`).
"""

from typing import TYPE_CHECKING

from tierflow.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.nodes.routers.calibrate import Calibration, threshold_for_share
    from tierflow.nodes.routers.compose import ComposedRouter, Strategy
    from tierflow.nodes.routers.data import RoutingData, RoutingDataError, load_routing_csv
    from tierflow.nodes.routers.decision import EffortBand, TierCost
    from tierflow.nodes.routers.evaluate import Evaluation, evaluate_routers
    from tierflow.nodes.routers.ladder import next_stronger
    from tierflow.nodes.routers.learned import LearnedRouter
    from tierflow.nodes.routers.llm import LLMRouter, RouteChoice
    from tierflow.nodes.routers.pricing import Pricing
    from tierflow.nodes.routers.training import Target, train_learned_router

__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "tierflow.nodes.routers.calibrate": ("Calibration", "threshold_for_share"),
        "tierflow.nodes.routers.compose": ("ComposedRouter", "Strategy"),
        "tierflow.nodes.routers.data": ("RoutingData", "RoutingDataError", "load_routing_csv"),
        "tierflow.nodes.routers.decision": ("EffortBand", "TierCost"),
        "tierflow.nodes.routers.evaluate": ("Evaluation", "evaluate_routers"),
        "tierflow.nodes.routers.ladder": ("next_stronger",),
        "tierflow.nodes.routers.learned": ("LearnedRouter",),
        "tierflow.nodes.routers.llm": ("LLMRouter", "RouteChoice"),
        "tierflow.nodes.routers.pricing": ("Pricing",),
        "tierflow.nodes.routers.training": ("Target", "train_learned_router"),
    },
)

__all__ = [
    "Calibration",
    "ComposedRouter",
    "EffortBand",
    "Evaluation",
    "LLMRouter",
    "LearnedRouter",
    "Pricing",
    "RouteChoice",
    "RoutingData",
    "RoutingDataError",
    "Strategy",
    "Target",
    "TierCost",
    "evaluate_routers",
    "load_routing_csv",
    "next_stronger",
    "threshold_for_share",
    "train_learned_router",
]
