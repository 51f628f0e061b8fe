"""Offline work on a learned router: load routing data, train, calibrate, evaluate,
plot. No node calls this package; `tierflow router train|eval` does. Needs
`tierflow[train]` (scikit-learn, scipy; matplotlib for plots).
"""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.routing.offline.calibrate import Calibration, threshold_for_share
    from tierflow.routing.offline.data import RoutingData, load_routing_csv
    from tierflow.routing.offline.evaluate import Evaluation, evaluate_routers
    from tierflow.routing.offline.training import Target, train_learned_router

__all__ = [
    "Calibration",
    "Evaluation",
    "RoutingData",
    "Target",
    "evaluate_routers",
    "load_routing_csv",
    "threshold_for_share",
    "train_learned_router",
]

__getattr__, __dir__ = lazy_names(
    __name__,
    __all__,
    {
        "tierflow.routing.offline.calibrate": ("Calibration", "threshold_for_share"),
        "tierflow.routing.offline.data": ("RoutingData", "load_routing_csv"),
        "tierflow.routing.offline.evaluate": ("Evaluation", "evaluate_routers"),
        "tierflow.routing.offline.training": ("Target", "train_learned_router"),
    },
)
