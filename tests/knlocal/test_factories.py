"""knlocal.factories: a revision's environment (the Knative runtime contract, §1.1)."""

from pathlib import Path

import pytest

from knlocal.apis.serving import Container, KnativeService, RevisionTemplate
from knlocal.factories import revision_environment
from knlocal.settings import Settings

SERVICE = KnativeService(
    name="user-create",
    namespace="default",
    template=RevisionTemplate({}, 8, 30, Container("img", {"FUNCTION": "user-create"})),
)


def test_the_environment_is_the_containers_plus_the_runtime_contract(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("UNRELATED_SECRET", "x")
    env = revision_environment(SERVICE, Settings(data_dir=tmp_path), "http://127.0.0.1:8081/d/d")
    assert env["FUNCTION"] == "user-create"
    assert (env["K_SERVICE"], env["K_CONFIGURATION"], env["K_REVISION"]) == (
        "user-create",
        "user-create",
        "user-create-00001",
    )
    assert env["K_SINK"] == "http://127.0.0.1:8081/d/d"
    assert env["DATA_DIR"] == str(tmp_path.resolve())
    assert env["AWS_REGION"] == "eu-west-1"
    assert "UNRELATED_SECRET" not in env


def test_without_a_sink_binding_there_is_no_k_sink(tmp_path: Path) -> None:
    assert "K_SINK" not in revision_environment(SERVICE, Settings(data_dir=tmp_path), None)
