"""user-approve on GoogleCloudPlatform's functions-framework, for bench/run.py's comparison.

Served by gunicorn from `.cache/ff-venv` (functions-framework pins cloudevents 1.x, which cannot
live beside the project's 2.x): `gunicorn -c python:functions.gunicorn_conf
'bench.ff_user_approve:create_app()'`, the settings our functions run with.

The approval rules are not copied: `decide` and the constants it reads are compiled from
functions/user_approve.py itself (its imports need the CloudEvents 2.x SDK, so the module cannot
be imported here); the data is validated against the same catalog schema, the same way
(functions/schema.py). The glue is the
framework's and its SDK's; the reply is written as a binary-mode CloudEvent, like ours.
"""

import ast
import uuid
from pathlib import Path
from typing import Any

import functions_framework
import yaml
from cloudevents.http import CloudEvent, from_http, to_binary
from flask import Flask, Request, Response

from functions.schema import Schema  # jsonschema and fastjsonschema only: no SDK 2.x

_FUNCTIONS = Path(__file__).resolve().parents[1] / "functions"
_RULES = _FUNCTIONS / "user_approve.py"
_NAMES = {"decide", "BLOCKED_NAMES", "_SEPARATORS"}
#: The same reply-id namespace as functions/ce.py, so replies are alike byte for byte in size.
_REPLY_ID_NAMESPACE = uuid.UUID("6f1c3a52-6f5e-4d7a-9a36-2f4f5f1d2b10")


def _load_rules() -> dict[str, Any]:
    tree = ast.parse(_RULES.read_text(encoding="utf-8"))
    keep = [
        node
        for node in tree.body
        if (isinstance(node, ast.FunctionDef) and node.name in _NAMES)
        or (
            isinstance(node, ast.AnnAssign | ast.Assign)
            and any(
                isinstance(t, ast.Name) and t.id in _NAMES
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            )
        )
    ]
    namespace: dict[str, Any] = {"Final": Any}
    exec("import unicodedata", namespace)
    exec(compile(ast.Module(keep, type_ignores=[]), str(_RULES), "exec"), namespace)
    return namespace


def _user_created_schema() -> Schema:
    """The event catalog's schema of `user.created` data, as functions/catalog.py builds it."""
    catalog = yaml.safe_load((_FUNCTIONS / "catalog.yaml").read_text(encoding="utf-8"))
    schema = {
        **catalog["types"]["dev.knuser.user.created.v1"]["data"],
        "definitions": catalog.get("definitions", {}),
    }
    return Schema(schema, check_formats=True)


decide = _load_rules()["decide"]
_SCHEMA = _user_created_schema()


@functions_framework.http
def user_approve(request: Request) -> Response:
    """Decide on the user of a `user.created` event; reply with the decision event.

    The framework's `cloud_event` signature cannot reply (it answers "OK"), so the function takes
    the HTTP request and parses the CloudEvent with the SDK the framework ships, as a
    functions-framework user who needs Knative's reply semantics would.
    """
    event = from_http(dict(request.headers), request.get_data())
    data = event.data
    errors = sorted(_SCHEMA.errors(data), key=str)
    if errors:
        return Response(f"invalid data: {errors[0].message}", status=400)
    user = data["user"]
    reason = decide(user["name"])
    reply = CloudEvent(
        {
            "id": str(uuid.uuid5(_REPLY_ID_NAMESPACE, f"{event['id']}/approval")),
            "source": event["source"],
            "type": "dev.knuser.user.approval.decided.v1",
            "operationid": data["operationId"],
        },
        {
            "operationId": data["operationId"],
            "userId": user["id"],
            "approved": reason is None,
            "reason": reason,
        },
    )
    headers, body = to_binary(reply)
    return Response(body, status=200, headers=headers)


def create_app() -> Flask:
    """The framework's WSGI app serving :func:`user_approve` (gunicorn's target)."""
    app: Flask = functions_framework.create_app("user_approve", __file__, "http")
    return app
