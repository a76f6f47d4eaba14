"""Secrets in settings: given in the environment or as a mounted file, never on a command line.

A secret field is a `SecretStr` (its value never appears in a repr, a log line or an error)
beside a `<name>_file` path (a Kubernetes Secret mounted as a file, which can be rotated
without a new environment). `settings_options` leaves `SecretStr` fields out of the CLI.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr


class SecretFileError(Exception):
    """A secret's file cannot be read (one readable line: which setting, which file)."""


def one_source(value: SecretStr | None, file: Path | None, name: str) -> None:
    """Refuse a secret given both inline and as a file: which one wins would be a guess."""
    if value is not None and file is not None:
        raise ValueError(f"set {name} or {name}_file, not both")


def read_secret(value: SecretStr | None, file: Path | None, name: str) -> str | None:
    """The secret's text: the inline value, else the file's content without a final newline
    (read at each use, so a rotated Secret file is picked up by the next connection)."""
    if value is not None:
        return value.get_secret_value()
    if file is None:
        return None
    try:
        return file.read_text().rstrip("\r\n")
    except OSError as error:
        raise SecretFileError(f"{name}_file {file}: {error.strerror}") from None
