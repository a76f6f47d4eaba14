"""Service settings: one pydantic-settings class per service, exposed as CLI options.

The settings class is the single source of truth. `settings_options` turns its fields into
click options whose help shows the field's description, its environment variable and its
default; values given on the command line override the environment, which overrides the
defaults (12-factor). Bad values fail at start-up with one readable line per problem.
"""

from __future__ import annotations

import difflib
import enum
import json
import os
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


ENV_NAMESPACE = "MASKWATCH_"
KNOWN_PREFIXES = (
    "MASKWATCH_AGGREGATOR_",
    "MASKWATCH_API_",
    "MASKWATCH_DETECTOR_",
    "MASKWATCH_EVALUATE_CLASSIFIER_",
    "MASKWATCH_EVALUATE_PIPELINE_",
    "MASKWATCH_EXPORT_",
    "MASKWATCH_KAFKA_",
    "MASKWATCH_PRODUCER_",
    "MASKWATCH_RESULTS_EXPORT_",
    "MASKWATCH_RESULTS_TAIL_",
    "MASKWATCH_RUN_",
    "MASKWATCH_SERVE_",
    "MASKWATCH_STACK_",
    "MASKWATCH_TRAIN_",
)
"""The env prefix of every settings class (tests/deploy checks it against the classes): a
class knows its own variables, and these tell it which other names belong to someone else."""
TOOLING_VARIABLES = frozenset(
    {
        "MASKWATCH_BUILD_CA_BUNDLE",
        "MASKWATCH_CACHE",
        "MASKWATCH_DEBIAN_MIRROR",
        "MASKWATCH_DEPLOY_CACHE",
        "MASKWATCH_IMAGE_TAG",
        "MASKWATCH_PYTHON",
        "MASKWATCH_SCHEMAS_OUT",
        "MASKWATCH_SCREENSHOT_DIR",
        "MASKWATCH_SHARED_DIR",
        "MASKWATCH_STACK_QUIET",
        "MASKWATCH_STACK_WIPE",
    }
)
"""MASKWATCH_* variables that are no settings field: read by scripts (deploy/images/build.sh
takes the BUILD_CA_BUNDLE, CACHE, DEBIAN_MIRROR and IMAGE_TAG ones), tests, and the flags of
one command (`maskwatch stack down --wipe`, `stack status --quiet`)."""


class UnknownSettingError(Exception):
    """A MASKWATCH_* variable that no settings class reads (a typo would be ignored silently).

    Not a ValueError, so pydantic lets it through as it is instead of wrapping it."""


def env_names(settings_cls: type[BaseSettings]) -> set[str]:
    """Every variable `settings_cls` reads: one per field, plus `<SECTION>__<FIELD>` at any
    depth (a section inside a section: `HEALTH__REDIS_SECURITY__PASSWORD_FILE`)."""
    names = set()
    for name, field in settings_cls.model_fields.items():
        names.add(_env_name(settings_cls, name))
        names |= {_env_name(settings_cls, path) for path in _section_paths(name, field)}
    return names


def _section_paths(path: str, field: Any) -> set[str]:
    """`path__leaf` for every field under a section field, recursing into nested sections."""
    paths = set()
    for leaf, inner in _leaf_fields(_section_models(field.annotation)).items():
        nested = f"{path}{SECTION_DELIMITER}{leaf}"
        paths |= {nested} | _section_paths(nested, inner)
    return paths


def unknown_variables(settings_cls: type[BaseSettings], environ: dict[str, str]) -> list[str]:
    """One line per MASKWATCH_* variable in `environ` that is under `settings_cls`'s prefix
    but none of its names, or under no known prefix at all, with the closest valid name."""
    own_prefix = str(settings_cls.model_config.get("env_prefix") or "").upper()
    own = env_names(settings_cls)
    others = tuple(p for p in KNOWN_PREFIXES if p != own_prefix)
    lines = []
    for variable in sorted(v.upper() for v in environ):
        if not variable.startswith(ENV_NAMESPACE) or variable in own | TOOLING_VARIABLES:
            continue
        if own_prefix and variable.startswith(own_prefix):
            close = difflib.get_close_matches(variable, sorted(own), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            lines.append(
                f"unknown setting {variable}: {settings_cls.__name__} has no such field{hint}"
            )
        elif not variable.startswith(others):
            prefix = _closest_prefix(variable, (own_prefix, *others) if own_prefix else others)
            lines.append(
                f"unknown setting {variable}: no service has its prefix; "
                f"did you mean a {prefix}* variable?"
            )
    return lines


def _closest_prefix(variable: str, prefixes: tuple[str, ...]) -> str:
    """The prefix that the start of `variable` is most like (a typo in the service's name)."""

    def likeness(prefix: str) -> float:
        return difflib.SequenceMatcher(None, variable[: len(prefix)], prefix).ratio()

    return max(prefixes, key=likeness)


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

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_variables(cls, data: Any) -> Any:
        """Fail on a MASKWATCH_* variable nobody reads: pydantic-settings would ignore it."""
        lines = unknown_variables(cls, dict(os.environ))
        if lines:
            raise UnknownSettingError("\n".join(lines))
        return data


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


def is_secret(annotation: Any) -> bool:
    """A SecretStr field (optional or not): set only through the environment or its file,
    never as a command-line flag, which any user on the machine can read in `ps`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(is_secret(a) for a in typing.get_args(annotation))
    return annotation is SecretStr


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
            if is_secret(field.annotation):
                continue  # secrets never in flags (process lists, shell history): env or file
            default = field.get_default(call_default_factory=True)
            models = _section_models(field.annotation)
            if not models:
                help_text = _help(settings_cls, name, field, default)
                func = _option(func, name, field.annotation, help_text)
                continue
            for leaf, sub in reversed(list(_leaf_fields(models).items())):
                if is_secret(sub.annotation):
                    continue  # a section's secret (the Kafka password) likewise
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
    except UnknownSettingError as error:
        raise click.UsageError(str(error)) from None
    except ValidationError as error:
        lines = [
            f"  {'.'.join(map(str, e['loc'])) or '(settings)'} "
            f"({_env_name(settings_cls, SECTION_DELIMITER.join(map(str, e['loc'][:2])))}): "
            f"{e['msg']}"
            for e in error.errors()
        ]
        raise click.UsageError("invalid settings:\n" + "\n".join(lines)) from None
