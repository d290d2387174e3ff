"""What the user designs: pipelines (networkx graphs), specs, distributions, workloads."""

from .dists import Dist
from .faults import Fault, Faults
from .pipeline import ActorSpec, ConsumerSpec, Pipeline, RetryPolicy, StoreSpec
from .workload import Constant, Diurnal, Piecewise, Poisson, Replay, Workload

__all__ = ["Dist", "Fault", "Faults", "Pipeline", "ActorSpec", "ConsumerSpec", "RetryPolicy", "StoreSpec", "Workload", "Poisson",
           "Constant", "Piecewise", "Diurnal", "Replay"]
