"""The local machine's cap on instances per Service: an overlay read by the runtime only.

The Services' `autoscaling.knative.dev/max-scale` (10 each) is what a cluster gets. On a 2-core
machine six Services at ten instances each, ~35 processes at once in a burst, starve the
runtime's event loop and Kafka's clients, which makes every request slower, which makes the
KPA add more instances. The ConfigMap `knlocal-scale-caps` in knative/local/ (PROFILE=local
only; deploy/ never renders knative/local/) lowers each Service's max scale here:
``max-scale`` caps every Service, ``max-scale.<service>`` one Service. A cap only lowers a
bound: the Service's own annotation still applies when it is smaller.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from knlocal.errors import ConfigError

#: Where the caps are declared: namespace and name of the ConfigMap.
CONFIG_MAP: Final = ("knative-serving", "knlocal-scale-caps")
MAX_SCALE_KEY: Final = "max-scale"
MAX_SCALE_ANNOTATION: Final = "autoscaling.knative.dev/max-scale"


@dataclass(frozen=True)
class ScaleCaps:
    """The caps; 0 = none.

    :ivar every: the cap on every Service.
    :ivar by_service: caps on single Services, by name (they win over `every`).
    """

    every: int = 0
    by_service: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_configmap(cls, data: Mapping[str, str]) -> "ScaleCaps":
        """Read the ConfigMap's data (empty: no caps).

        :raises ConfigError: a key is unknown or a value is not a whole number ≥ 1.
        """
        every = 0
        by_service: dict[str, int] = {}
        for key, value in data.items():
            if not str(value).isdigit() or int(value) < 1:
                raise ConfigError(
                    f"ConfigMap {CONFIG_MAP[1]} key {key}: expected a whole number of at"
                    f" least 1; found {value!r}"
                )
            if key == MAX_SCALE_KEY:
                every = int(value)
            elif key.startswith(MAX_SCALE_KEY + "."):
                by_service[key.removeprefix(MAX_SCALE_KEY + ".")] = int(value)
            else:
                raise ConfigError(
                    f"ConfigMap {CONFIG_MAP[1]}: unknown key {key!r}; expected {MAX_SCALE_KEY}"
                    f" or {MAX_SCALE_KEY}.<service>"
                )
        return cls(every, by_service)

    def annotations(self, service: str, annotations: Mapping[str, str]) -> Mapping[str, str]:
        """The Service's annotations with its max scale lowered to its cap, if it has one.

        A max-scale that is not a number is left as it is, for the autoscaler to report.
        """
        cap = self.by_service.get(service, self.every)
        current = str(annotations.get(MAX_SCALE_ANNOTATION, "0")).strip()
        if not cap or not current.isdigit():
            return annotations
        capped = cap if int(current) == 0 else min(int(current), cap)
        return {**annotations, MAX_SCALE_ANNOTATION: str(capped)}
