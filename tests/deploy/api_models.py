"""Validate Kubernetes objects against the API models generated from the real schemas.

The cloudcoil-models-* packages are generated from Knative's, Istio's and Kubernetes' own
OpenAPI schemas. Their models ignore unknown keys (pydantic's default) where the API server
rejects them or, worse, silently drops a misspelt setting; :func:`validate` therefore also compares
what the model kept with what it was given, and parses in strict JSON mode so that `"8"` is not
taken for `8`.
"""

import json
import warnings
from typing import Any, Literal

import pydantic

with warnings.catch_warnings():
    # The generated Channel model has fields (name, namespace) that shadow Resource properties:
    # harmless here, and an error under the project's filterwarnings = error.
    warnings.filterwarnings("ignore", r"Field name \"\w+\" in \"Channel\" shadows", UserWarning)
    from cloudcoil.models.istio.networking import v1 as istio_networking
    from cloudcoil.models.knative_eventing.eventing import v1 as eventing
    from cloudcoil.models.knative_eventing.sources import v1 as sources
    from cloudcoil.models.knative_serving.internal.autoscaling import v1alpha1 as autoscaling
    from cloudcoil.models.knative_serving.serving import v1 as serving
    from cloudcoil.models.kubernetes.core import v1 as core


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class RabbitmqClusterReference(_Strict):
    """eventing-rabbitmq's `RabbitmqClusterReference` (no generated model is published)."""

    name: str | None = None
    namespace: str | None = None
    connectionSecret: dict[str, str] | None = None


class RabbitmqBrokerConfigSpec(_Strict):
    """`RabbitmqBrokerConfigSpec` of `pkg/apis/eventing/v1alpha1/rabbitmq_types.go` (§3.3)."""

    rabbitmqClusterReference: RabbitmqClusterReference
    queueType: Literal["quorum", "classic"] = "quorum"
    vhost: str | None = None


class RabbitmqBrokerConfig(_Strict):
    """eventing-rabbitmq's `RabbitmqBrokerConfig`, written after its Go type (as the stand-in CRD
    tools/cluster/rabbitmqbrokerconfig-crd.yaml is)."""

    apiVersion: Literal["eventing.knative.dev/v1alpha1"]
    kind: Literal["RabbitmqBrokerConfig"]
    metadata: dict[str, Any]
    spec: RabbitmqBrokerConfigSpec


#: The API model of each (apiVersion, kind) this project writes or reads.
MODELS: dict[tuple[str, str], type[pydantic.BaseModel]] = {
    ("v1", "ConfigMap"): core.ConfigMap,
    ("v1", "Pod"): core.Pod,
    ("serving.knative.dev/v1", "Service"): serving.Service,
    ("autoscaling.internal.knative.dev/v1alpha1", "PodAutoscaler"): autoscaling.PodAutoscaler,
    ("eventing.knative.dev/v1", "Broker"): eventing.Broker,
    ("eventing.knative.dev/v1", "Trigger"): eventing.Trigger,
    ("sources.knative.dev/v1", "SinkBinding"): sources.SinkBinding,
    ("sources.knative.dev/v1", "PingSource"): sources.PingSource,
    ("networking.istio.io/v1", "VirtualService"): istio_networking.VirtualService,
    ("eventing.knative.dev/v1alpha1", "RabbitmqBrokerConfig"): RabbitmqBrokerConfig,
}

#: One expression of a Trigger's `filters` (the model types their nesting as free maps).
TriggerFilter = eventing.FilterModel


def unknown_fields(given: Any, kept: Any, path: str) -> list[str]:
    """Paths of the keys of `given` missing from `kept`: fields the schema does not have."""
    if isinstance(given, dict) and isinstance(kept, dict):
        found = [f"{path}.{k}" for k in given if k not in kept]
        for k in given.keys() & kept.keys():
            found += unknown_fields(given[k], kept[k], f"{path}.{k}")
        return found
    if isinstance(given, list) and isinstance(kept, list) and len(given) == len(kept):
        return [
            f
            for i, (g, k) in enumerate(zip(given, kept, strict=True))
            for f in unknown_fields(g, k, f"{path}[{i}]")
        ]
    return []


def validate_as(model: type[pydantic.BaseModel], value: dict[str, Any], where: str) -> None:
    """Check `value` against `model`: strict types, no unknown field.

    :raises AssertionError: saying which field is wrong, and where.
    """
    try:
        parsed = model.model_validate_json(json.dumps(value), strict=True)
    except pydantic.ValidationError as exc:
        raise AssertionError(f"{where} is not a valid {model.__name__}:\n{exc}") from exc
    kept = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    unknown = unknown_fields(value, kept, where)
    assert not unknown, f"fields unknown to the {model.__name__} API: {unknown}"


def validate(obj: dict[str, Any]) -> None:
    """Check one API object against the model of its apiVersion and kind.

    :raises AssertionError: no model for its kind, or the object does not fit it.
    """
    meta = obj.get("metadata", {})
    where = f"{obj.get('kind')}/{meta.get('namespace', '')}/{meta.get('name')}"
    model = MODELS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
    assert model, f"{where}: no API model for {obj.get('apiVersion')} {obj.get('kind')}"
    validate_as(model, obj, where)
    if obj["kind"] == "Trigger":
        validate_filters(obj["spec"].get("filters", []), f"{where}.spec.filters")


def validate_filters(filters: list[dict[str, Any]], where: str) -> None:
    """Check Trigger `filters` expressions, nested ones (`any`, `all`, `not`) included."""
    for i, expression in enumerate(filters):
        validate_as(TriggerFilter, expression, f"{where}[{i}]")
        for dialect in ("any", "all"):
            validate_filters(expression.get(dialect, []), f"{where}[{i}].{dialect}")
        if "not" in expression:
            validate_filters([expression["not"]], f"{where}[{i}].not")
