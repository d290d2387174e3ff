"""cdpkit: design Cloudflare Queues + Durable Objects pipelines before deploying them.

>>> import cdpkit as cdp
>>> rt = cdp.Runtime(semantics="production")
>>> rt.semantics.default_max_batch_size
10
"""

from . import deploy as deploy
from . import export as export
from . import viz as viz
from .deploy import from_wrangler
from .errors import BudgetError, CdpkitError, ConfigError, HandlerError, HandlerWarning, LimitError
from .model import Constant, Dist, Diurnal, Faults, Piecewise, Pipeline, Poisson, Replay, Workload
from .runtime import (
    LOCAL,
    PRODUCTION,
    PRODUCTION_ALL_SLOTS,
    PRODUCTION_FREE,
    Actor,
    ActorAborted,
    Autoscaling,
    Runtime,
    Semantics,
    persist,
)
from .runtime.budget import Budget
from .sim import Results, Tuning, choose, simulate, sweep, tune

__version__ = "0.1.0"

__all__ = ["Pipeline", "Dist", "Workload", "Poisson", "Constant", "Piecewise", "Diurnal", "Replay",
           "Faults", "simulate", "sweep", "choose", "tune", "Tuning", "Results", "Actor", "ActorAborted", "persist", "Runtime", "Semantics", "LOCAL", "PRODUCTION",
           "PRODUCTION_ALL_SLOTS", "PRODUCTION_FREE", "Autoscaling", "CdpkitError", "ConfigError",
           "LimitError", "HandlerError", "HandlerWarning", "Budget", "BudgetError", "from_wrangler", "__version__"]
