"""docs/cluster.md: its `kn` commands create what `make deploy` applies, for both brokers.

The commands of the section "The same with kn" are parsed as a shell would split them, read the
way `kn` (v1.17) reads its flags, and turned into the objects they create; `kubectl patch
--type merge` is applied as a JSON merge patch, and `kubectl apply -f FILE` contributes the
file's objects. The result must equal the rendered manifests (names, env, annotations, labels,
probes, filters, sinks, delivery): a manifest changed without its command, or the other way
round, fails here.
"""

import argparse
import json
import re
import shlex
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_manifests import BROKERS, ROOT, render

DOC = ROOT / "docs" / "cluster.md"
SECTION = "## The same with kn"
#: kn's scaling flags and the revision annotations they set (kn service create --help).
SCALE_FLAGS = {
    "scale_min": "autoscaling.knative.dev/min-scale",
    "scale_max": "autoscaling.knative.dev/max-scale",
    "scale_init": "autoscaling.knative.dev/initial-scale",
    "scale_target": "autoscaling.knative.dev/target",
    "scale_metric": "autoscaling.knative.dev/metric",
    "scale_window": "autoscaling.knative.dev/window",
    "scale_utilization": "autoscaling.knative.dev/target-utilization-percentage",
    "scale_activation": "autoscaling.knative.dev/activation-scale",
}
Object = dict[str, Any]
#: What `kn service create --security-context strict` (kn's default) sets on the container:
#: Knative's secure defaults (knative/client pkg/kn/flags/podspec_helper.go, PR #1821).
KN_STRICT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
#: The label `kn service create --cluster-local` sets.
KN_CLUSTER_LOCAL = ("networking.knative.dev/visibility", "cluster-local")


def _commands(markdown: str) -> list[list[str]]:
    """The shell commands of the kn section's code blocks, one word list per command."""
    section = markdown.split(SECTION, 1)[1].split("\n## ", 1)[0]
    commands: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.DOTALL):
        pending = ""
        for line in block.splitlines():
            pending += line + "\n"
            if pending.rstrip().endswith("\\"):
                continue
            try:
                # As bash does: backslash-newline continues the line.
                words = shlex.split(pending.replace("\\\n", " "), comments=True)
            except ValueError:  # an open quote: the command goes on on the next line
                continue
            pending = ""
            if words:
                commands.append(words)
        assert not pending.strip(), f"unfinished command in docs/cluster.md: {pending}"
    return commands


def _parser(
    *flags: str, repeated: tuple[str, ...] = (), switches: tuple[str, ...] = ()
) -> argparse.ArgumentParser:
    # exit_on_error=False: an unknown flag is a test failure naming it, not a SystemExit.
    parser = argparse.ArgumentParser(exit_on_error=False, add_help=False)
    parser.add_argument("name")
    for flag in flags:
        parser.add_argument(flag)
    for flag in repeated:
        parser.add_argument(flag, action="append", default=[])
    for flag in switches:
        parser.add_argument(flag, action="store_true")
    return parser


SERVICE = _parser(
    "--image",
    "--concurrency-limit",
    "--timeout",
    "--port",
    "--probe-readiness",
    "--probe-liveness",
    "--security-context",
    *(f"--{flag.replace('_', '-')}" for flag in SCALE_FLAGS),
    repeated=("--env", "--env-from", "--label-service", "--annotation-revision"),
    switches=("--cluster-local",),
)
TRIGGER = _parser("--broker", "--sink", repeated=("--filter",))
BINDING = _parser("--subject", "--sink")


def _parse(parser: argparse.ArgumentParser, words: list[str]) -> argparse.Namespace:
    args, unknown = parser.parse_known_args(words)
    assert not unknown, f"docs/cluster.md: flags this test does not know: {unknown} in {words}"
    return args


def _pairs(values: list[str]) -> dict[str, str]:
    return dict(v.split("=", 1) for v in values)


def _http_probe(value: str) -> Object:
    # kn's format http:host:port:path; empty host and port leave them to Knative.
    scheme, host, port, path = value.split(":", 3)
    assert (scheme, host, port) == ("http", "", ""), value
    return {"httpGet": {"path": path}}


def _ref(kind: str, name: str) -> Object:
    api = {
        "ksvc": ("serving.knative.dev/v1", "Service"),
        "broker": (
            "eventing.knative.dev/v1",
            "Broker",
        ),
    }[kind]
    return {"apiVersion": api[0], "kind": api[1], "name": name}


def _service(args: argparse.Namespace) -> Object:
    """The Knative Service `kn service create` makes of these flags (the parts we set)."""
    annotations = {a: getattr(args, f) for f, a in SCALE_FLAGS.items() if getattr(args, f)}
    annotations |= _pairs(args.annotation_revision)
    container: Object = {
        "image": args.image,
        "env": [{"name": k, "value": v} for k, v in _pairs(args.env).items()],
        "ports": [{"containerPort": int(args.port)}],
        "readinessProbe": _http_probe(args.probe_readiness),
        "livenessProbe": _http_probe(args.probe_liveness),
    }
    # kn's default is strict; the doc says so explicitly, as the manifests do.
    assert args.security_context == "strict", "docs/cluster.md: pass --security-context strict"
    container["securityContext"] = KN_STRICT
    if args.env_from:
        # kn: secret:NAME (cm:NAME for a ConfigMap); the manifests mark the Secret optional.
        container["envFrom"] = [
            {"secretRef": {"name": v.split(":", 1)[1], "optional": True}} for v in args.env_from
        ]
    labels = _pairs(args.label_service)
    if args.cluster_local:
        labels[KN_CLUSTER_LOCAL[0]] = KN_CLUSTER_LOCAL[1]
    return {
        "labels": labels,
        "template": {
            "metadata": {"annotations": annotations},
            "spec": {
                "containerConcurrency": int(args.concurrency_limit),
                "timeoutSeconds": int(args.timeout),
                "containers": [container],
            },
        },
    }


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, what `kubectl patch --type merge` applies to a custom resource."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def _from_doc(broker: str) -> dict[tuple[str, str], Object]:
    """What the kn section creates, as (kind, name) → object parts comparable with the render."""
    created: dict[tuple[str, str], Object] = {}
    for words in _commands(DOC.read_text()):
        words = [w.replace("$BROKER", broker) for w in words]
        if len(words) == 1 and "=" in words[0]:
            continue  # a shell variable: IMAGE=…, BROKER=…
        match words:
            case ["kn", "service", "create", *rest]:
                args = _parse(SERVICE, rest)
                created["Service", args.name] = _service(args)
            case ["kn", "trigger", "create", *rest]:
                args = _parse(TRIGGER, rest)
                kind, name = args.sink.split(":", 1)
                spec: Object = {"broker": args.broker, "subscriber": {"ref": _ref(kind, name)}}
                if args.filter:
                    spec["filter"] = {"attributes": _pairs(args.filter)}
                created["Trigger", args.name] = {"spec": spec}
            case ["kn", "source", "binding", "create", *rest]:
                args = _parse(BINDING, rest)
                kind, api_version, name = args.subject.split(":")
                sink_kind, sink_name = args.sink.split(":", 1)
                created["SinkBinding", args.name] = {
                    "spec": {
                        "subject": {"apiVersion": api_version, "kind": kind, "name": name},
                        "sink": {"ref": _ref(sink_kind, sink_name)},
                    }
                }
            case ["kubectl", "patch", "trigger", name, "--type", "merge", "-p", patch]:
                key = ("Trigger", name)
                assert key in created, f"docs/cluster.md patches {name} before creating it"
                created[key] = _merge(created[key], json.loads(patch))
            case ["kubectl", "apply", "-f", path]:
                for doc in yaml.safe_load_all((ROOT / path).read_text()):
                    created[doc["kind"], doc["metadata"]["name"]] = doc
            case _:
                pytest.fail(f"docs/cluster.md: a command this test does not read: {words}")
    return created


@pytest.mark.parametrize("broker", [b.name for b in BROKERS])
def test_kn_commands_create_what_make_deploy_applies(broker: str) -> None:
    rendered = {(o["kind"], o["metadata"]["name"]): o for o in render(broker)}
    created = _from_doc(broker)
    assert sorted(created) == sorted(rendered), (
        "docs/cluster.md and the manifests name different objects"
    )
    for key, made in created.items():
        obj = rendered[key]
        if key[0] == "Service":
            template = obj["spec"]["template"]
            assert made["labels"] == obj["metadata"].get("labels", {}), key
            assert made["template"]["metadata"] == template["metadata"], key
            spec, expected = dict(made["template"]["spec"]), dict(template["spec"])
            (container,), (manifest_container,) = spec.pop("containers"), expected.pop("containers")
            assert spec == expected, key
            # The image is the variable the reader sets, as IMAGE= is for make deploy.
            assert container.pop("image") == "$IMAGE"
            manifest_container.pop("image")
            # kn sets the env in its own order; the order means nothing to the function.
            for c in (container, manifest_container):
                c["env"] = sorted(c["env"], key=lambda e: str(e["name"]))
            assert container == manifest_container, f"{key}: kn flags and manifest differ"
        elif key[0] in ("Trigger", "SinkBinding"):
            assert made["spec"] == obj["spec"], key
            annotations = made.get("metadata", {}).get("annotations", {})
            assert annotations == obj["metadata"].get("annotations", {}), f"{key}: annotations"
        else:
            assert made == obj, f"{key}: not the file `make deploy` applies"


def test_versions_in_the_doc_are_those_validated() -> None:
    """The Knative and Istio versions the doc names are those of the API models the test uses."""
    text = DOC.read_text()
    serving = metadata.version("cloudcoil-models-knative-serving")
    eventing = metadata.version("cloudcoil-models-knative-eventing")
    istio = metadata.version("cloudcoil-models-istio")
    minor = ".".join(serving.split(".")[:2])
    assert eventing.startswith(minor + ".")
    assert f"| Knative Serving | v{minor} |" in text
    assert f"| Knative Eventing | v{minor} |" in text
    assert f"KNATIVE=knative-v{minor}.0" in text
    assert f"Istio {'.'.join(istio.split('.')[:2])}" in text


def test_the_doc_names_only_make_targets_that_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-zA-Z_-]+):", makefile, re.MULTILINE))
    used = set(re.findall(r"\bmake ([a-z][a-z-]+)", DOC.read_text()))
    # `make burst` belongs to the burst driver (knuser_tools/burst/), built beside this.
    assert used - targets <= {"burst"}, f"docs/cluster.md names unknown targets {used - targets}"


def test_the_parser_rejects_an_unknown_flag() -> None:
    with pytest.raises(AssertionError, match="--imagee"):
        _parse(SERVICE, ["s", "--imagee", "x"])
    assert Path(DOC).is_file()
