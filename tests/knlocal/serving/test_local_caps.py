"""The local machine's cap on instances per Service (knative/local/knlocal-scale-caps.yaml)."""

import pytest

from knlocal.apis.loader import load
from knlocal.errors import ConfigError
from knlocal.serving.autoscaler.config import AutoscalerDefaults
from knlocal.serving.autoscaler.spec import RevisionScaling
from knlocal.serving.local_caps import CONFIG_MAP, MAX_SCALE_ANNOTATION, ScaleCaps
from knlocal.settings import Settings
from tests.servers import ROOT


def test_the_local_profile_caps_every_service_and_the_cluster_keeps_its_max_scale() -> None:
    """PROFILE=local: each Service's max scale is the cap; PROFILE=knative: the manifests' 10."""
    for profile, expected in (("local", 3), ("knative", 10)):
        system = load(Settings(manifests=ROOT, profile=profile))
        caps = ScaleCaps.from_configmap(system.config_map(*CONFIG_MAP))
        defaults = AutoscalerDefaults.from_configmap(
            system.config_map("knative-serving", "config-autoscaler")
        )
        for service in system.services.values():
            # the cluster's max scale, unchanged
            assert service.template.annotations[MAX_SCALE_ANNOTATION] == "10"
            scaling = RevisionScaling.resolve(
                caps.annotations(service.name, service.template.annotations),
                service.template.container_concurrency,
                defaults,
            )
            assert scaling.max_scale == expected, (profile, service.name)


def test_a_cap_only_lowers_a_bound_and_a_service_cap_wins() -> None:
    """Smaller annotation kept; unbounded (0 or absent) becomes the cap; per-Service key wins."""
    caps = ScaleCaps.from_configmap({"max-scale": "3", "max-scale.big": "5"})
    assert caps.annotations("s", {MAX_SCALE_ANNOTATION: "2"})[MAX_SCALE_ANNOTATION] == "2"
    assert caps.annotations("s", {MAX_SCALE_ANNOTATION: "10"})[MAX_SCALE_ANNOTATION] == "3"
    assert caps.annotations("s", {})[MAX_SCALE_ANNOTATION] == "3"
    assert caps.annotations("big", {MAX_SCALE_ANNOTATION: "0"})[MAX_SCALE_ANNOTATION] == "5"
    assert ScaleCaps().annotations("s", {}) == {}


@pytest.mark.parametrize(
    ("data", "found"),
    [({"max-scale": "0"}, "'0'"), ({"max-scale": "two"}, "'two'"), ({"maxscale": "2"}, "maxscale")],
    ids=["zero", "not-a-number", "unknown-key"],
)
def test_a_bad_cap_names_the_key_and_the_value(data: dict[str, str], found: str) -> None:
    """A bad overlay fails at start, naming the ConfigMap and what was found."""
    with pytest.raises(ConfigError) as raised:
        ScaleCaps.from_configmap(data)
    assert "knlocal-scale-caps" in str(raised.value)
    assert found in str(raised.value)
