"""Secret references in camera sources, resolved once at producer start-up.

A camera's `source` may hold `${NAME}` (the environment variable NAME) or
`${file:/run/secrets/cam-07}` (the content of a mounted file, final newline dropped), e.g.
`rtsp://viewer:${CAM_07_PASSWORD}@cam-07.city.invalid/stream1`, so cameras.yaml itself holds
no credential and can live in a ConfigMap or in git. The value is inserted verbatim:
percent-encode `@ : /` in a password that sits in a URL. `${` always starts a reference;
there is no escape.

The resolved text is kept as a `SecretStr` on the camera (its `source` keeps the reference)
and every resolved value is registered with the log redaction, so neither a repr, a log line
nor a library's error message carries it. A reference that cannot be resolved stops the
producer with one line naming the camera and the reference, never a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from runtime.logs import register_secret

REFERENCE = re.compile(r"\$\{(?:file:(?P<path>/[^}]+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*))\}")
"""`${NAME}` or `${file:/absolute/path}`."""


class SecretReferenceError(ValueError):
    """A source's secret reference is unset, empty or unreadable (names it, never a value)."""


def malformed_reference(source: str) -> str | None:
    """The first `${…` in `source` that is not a valid reference, or None (checked when
    cameras.yaml is parsed, so a typo fails before any secret is read)."""
    rest = REFERENCE.sub("", source)
    start = rest.find("${")
    if start < 0:
        return None
    end = rest.find("}", start)
    return rest[start : end + 1] if end >= 0 else rest[start:]


def _value(match: re.Match[str], owner: str, environ: Mapping[str, str]) -> str:
    if match["path"] is not None:
        try:
            value = Path(match["path"]).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise SecretReferenceError(
                f"{owner}: cannot read secret {match[0]}: {error.strerror}"
            ) from None
        if not value:
            raise SecretReferenceError(f"{owner}: secret {match[0]} is an empty file")
        return value
    value = environ.get(match["name"], "")
    if not value:
        raise SecretReferenceError(
            f"{owner}: secret {match[0]} is not set in the environment (or is empty)"
        )
    return value


def resolve_references(text: str, owner: str, environ: Mapping[str, str]) -> str | None:
    """`text` with its references resolved, or None when it has none. `owner` names the
    text in errors ("camera cam-07"). Every value is registered with the log redaction."""
    if not REFERENCE.search(text):
        return None
    values: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        values.append(_value(match, owner, environ))
        return values[-1]

    resolved = REFERENCE.sub(substitute, text)
    for value in values:
        register_secret(value)
    return resolved
