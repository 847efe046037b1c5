"""What every manifest shares: object metadata, and the readers of YAML shapes with field paths.

Each reader takes the field's path (``spec.template.spec.containers[0].image``) and raises a
:class:`~knlocal.errors.ManifestError` saying what was expected and what was found there.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knlocal.errors import ManifestError

#: The namespace of an object whose metadata names none (kubectl's default).
DEFAULT_NAMESPACE = "default"


def describe(value: Any) -> str:
    """A found value for an error message: its repr and, for non-strings, its YAML type."""
    return repr(value) if isinstance(value, str) else f"{type(value).__name__} {value!r}"


def mapping(value: Any, path: str) -> Mapping[str, Any]:
    """A mapping field; ``None`` (absent) reads as empty."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ManifestError(f"{path}: expected a mapping, found {type(value).__name__}")
    return value


def required(section: Mapping[str, Any], key: str, path: str) -> Any:
    """A field that must be there."""
    value = section.get(key)
    if value is None:
        raise ManifestError(f"{path}.{key}: missing required field")
    return value


def string(section: Mapping[str, Any], key: str, path: str, default: str | None = None) -> Any:
    """A string field, or `default` when it is absent."""
    value = section.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ManifestError(f"{path}.{key}: expected a string, found {describe(value)}")
    return value


def integer(
    section: Mapping[str, Any], key: str, path: str, default: int, low: int, high: int
) -> int:
    """An integer field within ``[low, high]``, or `default` when it is absent."""
    value = section.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ManifestError(
            f"{path}.{key}: expected an integer from {low} to {high}, found {describe(value)}"
        )
    return value


def string_map(value: Any, path: str) -> dict[str, str]:
    """A ``map[string]string`` field (labels, annotations, filter attributes); absent is empty."""
    entries = mapping(value, path)
    for key, text in entries.items():
        if not isinstance(key, str) or not isinstance(text, str):
            raise ManifestError(
                f"{path}: expected string keys and string values, found {key!r}: {text!r}"
            )
    return dict(entries)


@dataclass(frozen=True)
class ObjectMeta:
    """`metadata` of a manifest: who the object is, and the file it came from (for errors)."""

    name: str
    namespace: str
    path: Path
    kind: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """The prefix of an error about this object: `<file>: <Kind> <namespace>/<name>`."""
        return f"{self.path}: {self.kind} {self.namespace}/{self.name}"

    @classmethod
    def read(cls, path: Path, document: Mapping[str, Any]) -> "ObjectMeta":
        """Read a document's `metadata`.

        :raises ManifestError: `metadata.name` is missing, or a field has the wrong type.
        """
        kind = str(document.get("kind", ""))
        meta = mapping(document.get("metadata"), f"{path}: {kind} metadata")
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise ManifestError(
                f"{path}: {kind} metadata.name: expected a non-empty string, found {name!r}"
            )
        where = f"{path}: {kind} {name} metadata"
        return cls(
            name=name,
            namespace=string(meta, "namespace", where, DEFAULT_NAMESPACE),
            path=path,
            kind=kind,
            labels=string_map(meta.get("labels"), f"{where}.labels"),
            annotations=string_map(meta.get("annotations"), f"{where}.annotations"),
        )
