"""Service settings: one pydantic-settings class per service, exposed as CLI options.

The settings class is the single source of truth. `settings_options` turns its fields into
click options whose help shows the field's description, its environment variable and its
default; values given on the command line override the environment, which overrides the
defaults (12-factor). Bad values fail at start-up with one readable line per problem.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar

import click
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)
F = TypeVar("F", bound=Callable[..., Any])
SECTION_DELIMITER = "__"
"""Between a section and its field in environment names: MASKWATCH_DETECTOR_RUNTIME__LOG_LEVEL."""


class ServiceSettings(BaseSettings):
    """Base of every service's settings: unknown keys rejected, defaults validated, frozen.

    Subclasses set only `env_prefix`; pydantic merges the rest of this config into theirs.
    Sections (fields whose value is a model) are set whole as JSON or field by field as
    `<PREFIX><SECTION>__<FIELD>`; a section given in part keeps its defaults for the rest.
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        validate_default=True,
        frozen=True,
        env_nested_delimiter=SECTION_DELIMITER,
    )

    @model_validator(mode="before")
    @classmethod
    def _sections_keep_defaults(cls, data: Any) -> Any:
        """Merge a partly given section over the section's default, unless it names another
        `backend` (a different plugin starts from its own defaults)."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, field in cls.model_fields.items():
            given, default = merged.get(name), field.get_default(call_default_factory=True)
            if not (isinstance(given, dict) and isinstance(default, BaseModel)):
                continue
            if given.get("backend", getattr(default, "backend", None)) != getattr(
                default, "backend", None
            ):
                continue
            merged[name] = {**default.model_dump(exclude_unset=False), **given}
        return merged


class RuntimeSettings(BaseModel):
    """How a service process runs: the same fields, with one meaning, in every service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest level logged."
    )
    json_logs: bool = Field(True, description="JSON log lines (off: human-readable, for a tty).")
    health_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port of /healthz, /readyz, /metrics (0: any free port; none: no server).",
    )


def runtime_section(health_port: int) -> Any:
    """The `runtime` field of a service whose health endpoints default to `health_port`."""
    return Field(
        default_factory=lambda: RuntimeSettings(health_port=health_port),
        description="Logging and health endpoints.",
    )


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


def _section_models(annotation: Any) -> list[type[BaseModel]]:
    """The models a section field holds: one, or the members of a (discriminated) union."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _section_models(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [_section_models(a) for a in typing.get_args(annotation)]
        return [m for group in members for m in group] if all(members) else []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _leaf_fields(models: list[type[BaseModel]]) -> dict[str, Any]:
    """Every field of a section's models, first declaration wins (common fields once)."""
    fields: dict[str, Any] = {}
    for model in models:
        for name, field in model.model_fields.items():
            fields.setdefault(name, field)
    return fields


def _plain(annotation: Any) -> Any:
    """The annotation without `Annotated` metadata and without `| None`."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _plain(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _plain(members[0]) if len(members) == 1 else annotation
    return annotation


def click_type(annotation: Any) -> click.ParamType[Any]:
    """The click type of a field: so --help shows INTEGER, FLOAT, PATH or the choices, and
    a bad value fails with click's usual message before the settings are validated."""
    plain = _plain(annotation)
    if typing.get_origin(plain) is Literal:
        return click.Choice([str(v) for v in typing.get_args(plain)], case_sensitive=True)
    if isinstance(plain, type) and issubclass(plain, enum.Enum):
        return click.Choice([str(m.value) for m in plain], case_sensitive=True)
    if plain is int:
        return click.INT
    if plain is float:
        return click.FLOAT
    if isinstance(plain, type) and issubclass(plain, PurePath):
        return click.Path(path_type=Path)
    return click.STRING


def _option(func: F, name: str, annotation: Any, help_text: str) -> F:
    option = "--" + name.replace(SECTION_DELIMITER, "-").replace("_", "-")
    if _is_flag(_plain(annotation)):
        negative = "--no-" + option[2:]
        return click.option(f"{option}/{negative}", name, default=None, help=help_text)(func)
    metavar = "JSON" if _is_structured(annotation) else None
    kind = click_type(annotation)
    return click.option(option, name, type=kind, default=None, metavar=metavar, help=help_text)(
        func
    )


CLI_DEFAULT = "cli_default"
"""`json_schema_extra` key: how --help names a default computed at start-up (a host name)."""


def _shown(field: FieldInfo, default: Any) -> str:
    """A default as --help shows it: the same on every machine and run (a value computed at
    start-up is described, not shown), `none` when unset, JSON for structured values."""
    if field.is_required():
        return "required"
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if CLI_DEFAULT in extra:
        return str(extra[CLI_DEFAULT])
    structured = _is_structured(field.annotation)
    factory = field.default_factory
    if factory is not None and not isinstance(factory, type) and not structured:
        return "computed at start-up"
    if default is None:
        return "none"
    if structured:
        return json.dumps(default, default=_jsonable)
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, enum.Enum):
        return str(default.value)
    return str(default)


def _help(settings_cls: type[BaseSettings], key: str, field: FieldInfo, default: Any) -> str:
    env = _env_name(settings_cls, key)
    return f"{field.description or ''} [env: {env}; default: {_shown(field, default)}]".strip()


def settings_options(settings_cls: type[BaseSettings]) -> Callable[[F], F]:
    """Decorator adding one typed `--field-name` option per settings field to a click
    command; a section's fields become `--section-field` options. Secret fields get no
    option: they come from the environment or a file only."""

    def decorate(func: F) -> F:
        for name, field in reversed(list(settings_cls.model_fields.items())):
            if _plain(field.annotation) is SecretStr:
                continue  # secrets never in flags (process lists, shell history): env or file
            default = field.get_default(call_default_factory=True)
            models = _section_models(field.annotation)
            if not models:
                help_text = _help(settings_cls, name, field, default)
                func = _option(func, name, field.annotation, help_text)
                continue
            for leaf, sub in reversed(list(_leaf_fields(models).items())):
                key = f"{name}{SECTION_DELIMITER}{leaf}"
                help_text = _help(settings_cls, key, sub, getattr(default, leaf, None))
                func = _option(func, key, sub.annotation, help_text)
        return func

    return decorate


def _parsed(settings_cls: type[BaseSettings], name: str, value: Any) -> Any:
    """A command-line string of a structured field (list, dict, model) decoded from JSON."""
    section, _, leaf = name.partition(SECTION_DELIMITER)
    annotation = settings_cls.model_fields[section].annotation
    if leaf:
        annotation = _leaf_fields(_section_models(annotation))[leaf].annotation
    if not (_is_structured(annotation) and isinstance(value, str)):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not valid JSON: {error}", param_hint=name) from error


def load_settings(settings_cls: type[S], cli_values: dict[str, Any]) -> S:
    """Settings from defaults ← environment ← command line; a readable error if invalid."""
    given: dict[str, Any] = {}
    for name, value in cli_values.items():
        section, _, leaf = name.partition(SECTION_DELIMITER)
        if value is None or section not in settings_cls.model_fields:
            continue
        value = _parsed(settings_cls, name, value)
        if leaf:
            given.setdefault(section, {})[leaf] = value
        else:
            given[name] = value
    try:
        return settings_cls(**given)
    except ValidationError as error:
        lines = [
            f"  {'.'.join(map(str, e['loc'])) or '(settings)'} "
            f"({_env_name(settings_cls, SECTION_DELIMITER.join(map(str, e['loc'][:2])))}): "
            f"{e['msg']}"
            for e in error.errors()
        ]
        raise click.UsageError("invalid settings:\n" + "\n".join(lines)) from None
