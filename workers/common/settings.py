"""Service settings: one pydantic-settings class per service, exposed as CLI options.

The settings class is the single source of truth. `settings_options` turns its fields into
click options whose help shows the field's description, its environment variable and its
default; values given on the command line override the environment, which overrides the
defaults (12-factor). Bad values fail at start-up with one readable line per problem.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)
F = TypeVar("F", bound=Callable[..., Any])


class ServiceSettings(BaseSettings):
    """Base of every service's settings: unknown keys rejected, defaults validated, frozen.

    Subclasses set only `env_prefix`; pydantic merges the rest of this config into theirs.
    """

    model_config = SettingsConfigDict(extra="forbid", validate_default=True, frozen=True)


def _env_name(settings_cls: type[BaseSettings], field: str) -> str:
    prefix = settings_cls.model_config.get("env_prefix", "") or ""
    return f"{prefix}{field}".upper()


def _is_flag(annotation: Any) -> bool:
    return annotation is bool


def _is_structured(annotation: Any) -> bool:
    """Lists, dicts and models are given as JSON on the command line and in the environment."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_structured(a) for a in typing.get_args(annotation) if a is not type(None))
    if origin in (list, dict, tuple, set, frozenset):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _jsonable(value: Any) -> Any:
    """JSON form of a default that json cannot encode itself (models, paths, enums)."""
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else str(value)


def settings_options(settings_cls: type[BaseSettings]) -> Callable[[F], F]:
    """Decorator adding one `--field-name` option per settings field to a click command."""

    def decorate(func: F) -> F:
        for name, field in reversed(list(settings_cls.model_fields.items())):
            env = _env_name(settings_cls, name)
            default = field.get_default(call_default_factory=True)
            structured = _is_structured(field.annotation)
            shown = json.dumps(default, default=_jsonable) if structured else default
            if field.is_required():
                shown = "required"
            help_text = f"{field.description or ''} [env: {env}; default: {shown}]".strip()
            option = "--" + name.replace("_", "-")
            if _is_flag(field.annotation):
                func = click.option(
                    f"{option}/--no-{name.replace('_', '-')}", name, default=None, help=help_text
                )(func)
            else:
                func = click.option(option, name, default=None, help=help_text)(func)
        return func

    return decorate


def load_settings(settings_cls: type[S], cli_values: dict[str, Any]) -> S:
    """Settings from defaults ← environment ← command line; a readable error if invalid."""
    given: dict[str, Any] = {}
    for name, value in cli_values.items():
        if value is None or name not in settings_cls.model_fields:
            continue
        if _is_structured(settings_cls.model_fields[name].annotation) and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as error:
                raise click.BadParameter(f"not valid JSON: {error}", param_hint=name) from error
        given[name] = value
    try:
        return settings_cls(**given)
    except ValidationError as error:
        lines = [
            f"  {'.'.join(map(str, e['loc'])) or '(settings)'} "
            f"({_env_name(settings_cls, str(e['loc'][0]) if e['loc'] else '')}): {e['msg']}"
            for e in error.errors()
        ]
        raise click.UsageError("invalid settings:\n" + "\n".join(lines)) from None
