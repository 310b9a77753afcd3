"""tollmeter: meter, price and cap the LLM spend of every tenant of an AI product."""

from ._version import __version__
from .business.plans import Plan, PlanError
from .config import ConfigError, MeterConfig
from .context import Scope, carry_scope, current_scope
from .events import LLMEvent, Usage
from .faults import RejectedEvent
from .limits import LimitExceededException
from .meter import Meter
from .transport.http import DeliveryError

__all__ = [
    "ConfigError",
    "DeliveryError",
    "LLMEvent",
    "LimitExceededException",
    "Meter",
    "MeterConfig",
    "Plan",
    "PlanError",
    "RejectedEvent",
    "Scope",
    "Usage",
    "__version__",
    "carry_scope",
    "current_scope",
]
