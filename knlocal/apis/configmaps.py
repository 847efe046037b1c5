"""`v1` ConfigMaps: the cluster's settings the runtime reads (config-autoscaler, a Broker's config).

Carried as written; what a key means is the reader's (the autoscaler reads `config-autoscaler`,
a broker backend its Broker's `spec.config`).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from knlocal.apis.meta import ObjectMeta, mapping
from knlocal.errors import ManifestError

#: Where Knative Serving keeps its ConfigMaps.
SERVING_NAMESPACE = "knative-serving"
#: The autoscaler's ConfigMap (knative-semantics.md §1.2).
CONFIG_AUTOSCALER = "config-autoscaler"


@dataclass(frozen=True)
class ConfigMap:
    """A ConfigMap's identity and `data`."""

    name: str
    namespace: str
    data: Mapping[str, str] = field(default_factory=dict)


def parse_config_map(meta: ObjectMeta, document: Mapping[str, Any]) -> ConfigMap:
    """Read a ConfigMap's `data`; a number or boolean written unquoted reads as its text.

    :raises ManifestError: `data` is not a mapping.
    """
    try:
        data = mapping(document.get("data"), "data")
    except ManifestError as exc:
        raise ManifestError(f"{meta.where}: {exc}") from None
    return ConfigMap(meta.name, meta.namespace, {str(k): _text(v) for k, v in data.items()})


def _text(value: Any) -> str:
    # YAML reads `true` and `10` as bool and int; Kubernetes would refuse them, the text is meant.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
