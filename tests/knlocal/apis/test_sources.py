"""knlocal.apis.sources: PingSource and SinkBinding read and validated as Knative does
(eventing `pkg/apis/sources/v1`)."""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from knlocal.apis.meta import ObjectMeta
from knlocal.apis.sources import PingSource, parse_ping_source, parse_sink_binding
from knlocal.errors import ManifestError
from knlocal.eventing.delivery import Destination

ROOT = Path(__file__).resolve().parents[3]
SINK = {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "svc"}}


def meta(kind: str, name: str = "tick", namespace: str = "team") -> ObjectMeta:
    """The metadata of a `kind` read from p.yaml."""
    return ObjectMeta(name, namespace, Path("p.yaml"), kind)


def source(**spec: Any) -> PingSource:
    """PingSource team/tick, read from `spec` and a sink."""
    return parse_ping_source(meta("PingSource"), {"sink": SINK, **spec})


def test_the_projects_ping_source_is_read_as_written() -> None:
    """sources/operation-sweep.yaml: every 5 minutes, UTC, the sweep policy as JSON, to /sweep."""
    doc = yaml.safe_load((ROOT / "sources/operation-sweep.yaml").read_text())
    sweep = parse_ping_source(meta("PingSource", "operation-sweep", "default"), doc["spec"])
    assert sweep.schedule == "*/5 * * * *"
    assert str(sweep.timezone) == "Etc/UTC"
    assert sweep.content_type == "application/json"
    assert json.loads(sweep.body) == {"stalledAfterSeconds": 30, "failAfterSeconds": 900}
    assert sweep.sink.uri == "/sweep"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"schedule": "* * *"}, "expected a cron schedule"),
        ({"schedule": "61 * * * *"}, "expected a cron schedule"),
        ({"timezone": "Mars/Olympus"}, "expected an IANA time zone"),
        ({"schedule": "CRON_TZ=Etc/UTC * * * * *", "timezone": "Etc/UTC"}, "not both"),
        ({"data": "x", "dataBase64": "eA=="}, "at most one of spec.data and spec.dataBase64"),
        ({"data": "{", "contentType": "application/json"}, "spec.data is not JSON"),
    ],
    ids=["fields", "range", "zone", "two-zones", "two-datas", "json"],
)
def test_invalid_specs_are_refused_naming_the_field(spec: Mapping[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        source(**spec)


def test_data_base64_is_kept_as_written_and_no_data_is_an_empty_body() -> None:
    """mtping's makeEvent passes []byte(DataBase64): the text itself, not decoded."""
    assert source(dataBase64="aGk=").body == b"aGk="
    assert source().body == b""


def test_an_error_names_the_file_and_the_ping_source() -> None:
    with pytest.raises(ManifestError, match=r"^p\.yaml: PingSource team/tick: spec\.schedule"):
        source(schedule="* *")


def test_a_sink_binding_binds_a_knative_service_to_a_destination() -> None:
    spec = {
        "subject": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "svc"},
        "sink": {"uri": "http://127.0.0.1:9/x"},
    }
    binding = parse_sink_binding(meta("SinkBinding"), spec)
    assert (binding.subject, binding.sink) == ("svc", Destination(None, "http://127.0.0.1:9/x"))


def test_a_sink_binding_subject_other_than_a_knative_service_is_refused() -> None:
    spec = {"subject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}, "sink": SINK}
    with pytest.raises(
        ManifestError, match=r"expected a Knative Service .* found apps/v1 Deployment"
    ):
        parse_sink_binding(meta("SinkBinding"), spec)
