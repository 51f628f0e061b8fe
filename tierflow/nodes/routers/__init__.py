"""Router strategies beyond the rules router: learned, LLM, composed; their training,
calibration and evaluation.

All implement the `Router` protocol of `tierflow.nodes.route` and can be an `Agent`'s
`router`. The learned router needs scikit-learn and numpy (runtime dependencies).
"""

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
