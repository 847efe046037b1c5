"""CloudEvents SQL (CESQL) v1: parse, compile and evaluate expressions on events.

The language of Trigger ``filters: [{cesql: …}]`` (knative-semantics.md §2.3). Knative's
MT broker evaluates it with sdk-go's implementation (EVENTING
``pkg/eventfilter/subscriptionsapi/cesql_filter.go``); this package passes the whole
CESQL TCK (``shared/data/cesql/tck``). A leaf package, as sdk-go's ``sql/v2`` is to Knative:
:mod:`knlocal.apis` compiles a Trigger's expression when it validates the Trigger, the
eventing filters evaluate it.
"""

from knlocal.cesql.errors import (
    CastError,
    CesqlError,
    EvaluationError,
    FunctionEvaluationError,
    MathError,
    MissingAttributeError,
    MissingFunctionError,
    ParseError,
    Value,
)
from knlocal.cesql.evaluation import (
    Attributes,
    Evaluation,
    Expression,
    compile_expression,
)

__all__ = [
    "Attributes",
    "CastError",
    "CesqlError",
    "Evaluation",
    "EvaluationError",
    "Expression",
    "FunctionEvaluationError",
    "MathError",
    "MissingAttributeError",
    "MissingFunctionError",
    "ParseError",
    "Value",
    "compile_expression",
]
