"""The risk gate's public name: arm state, pre-trade limits, rate limits, error breaker, kill switch.

The gate lives with the engine it guards (:mod:`core.execution.risk_gate`), so execution never
imports upwards; the faces, the application layer and the tools name it from here.
"""

from core.execution.exposure import ExposureSnapshot as ExposureSnapshot
from core.execution.exposure import Holding as Holding
from core.execution.exposure import group_key_of as group_key_of
from core.execution.risk_gate import KillResult as KillResult
from core.execution.risk_gate import RiskGate as RiskGate
from core.execution.risk_gate import RiskLimits as RiskLimits
from core.execution.rules import ReasonCode as ReasonCode
from core.execution.rules import RiskDecision as RiskDecision
