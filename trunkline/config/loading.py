"""Loading the settings: built-in defaults, a TOML file, the environment and flags.

Precedence, lowest to highest: built-in defaults < TOML file (``--config``) <
``TRUNKLINE_*`` environment variables < command-line flags. The environment and
TOML names are part of the operator contract (docs/configuration.md): keep them.

In the TOML file a setting is written with its environment name lower-cased and
without the ``TRUNKLINE_`` prefix (``http_port = 8080``), at top level. Every
value is parsed and checked here, once; the result is frozen.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from trunkline.config.groups import Settings, parse_networks
from trunkline.config.validation import ENV_PREFIX, ConfigError, validate


def _setting_fields() -> Iterator[tuple[str | None, dataclasses.Field[Any]]]:
    """(group attribute or None for top level, field) for every operator setting."""
    for top in dataclasses.fields(Settings):
        if "env" in top.metadata:
            yield None, top
        else:
            group_type = type(getattr(Settings(), top.name))
            for inner in dataclasses.fields(group_type):
                yield top.name, inner


SETTING_FIELDS: tuple[tuple[str | None, dataclasses.Field[Any]], ...] = tuple(_setting_fields())
SETTING_NAMES: tuple[str, ...] = tuple(f.metadata["env"] for _, f in SETTING_FIELDS)
_DEFAULTS = Settings()
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"  # names the TOML file; not a setting itself


def setting_values(settings: Settings) -> dict[str, Any]:
    """Every setting by its environment name (lower case, no prefix)."""
    values: dict[str, Any] = {}
    for group, item in SETTING_FIELDS:
        holder = settings if group is None else getattr(settings, group)
        values[item.metadata["env"]] = getattr(holder, item.name)
    return values


def setting_text(value: Any) -> str:
    """A setting's value as it is written in the environment."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def describe_settings() -> str:
    """The environment variables with their defaults, for ``--help``."""
    lines = [
        "environment variables (also TOML keys, lower-case without TRUNKLINE_):",
        f"  {CONFIG_ENV:<36} TOML settings file, read when --config is not given [unset]",
    ]
    defaults = setting_values(_DEFAULTS)
    for _, item in SETTING_FIELDS:
        name = item.metadata["env"]
        default = defaults[name]
        shown = str(default) if isinstance(default, bool) else setting_text(default) or "unset"
        shown = item.metadata.get("shown", shown)
        lines.append(f"  {ENV_PREFIX}{name.upper():<26} {item.metadata['help']} [{shown}]")
    lines.append(  # read at import by trunkline.speedups, before settings: environment only
        f"  {ENV_PREFIX}{'NO_SPEEDUPS':<26} 1: the media path in pure Python even where its C "
        "extension is built (environment only) [unset]"
    )
    return "\n".join(lines)


def _coerce(name: str, raw: Any, default: Any) -> Any:
    """Turn a TOML value or environment string into the type of the setting's default."""
    env_name = f"{ENV_PREFIX}{name.upper()}"
    if isinstance(default, StrEnum):
        choices = [member.value for member in type(default)]
        if str(raw) not in choices:
            raise ConfigError(f"{env_name} must be one of {', '.join(choices)}")
        return type(default)(str(raw))
    if isinstance(default, tuple):
        try:
            return raw if isinstance(raw, tuple) else parse_networks(str(raw))
        except ValueError as exc:
            raise ConfigError(f"{env_name}: {exc}") from None
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            if isinstance(raw, bool):
                raise ValueError(raw)
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(str(raw))
        return str(raw)
    except (TypeError, ValueError):
        kind = type(default).__name__
        raise ConfigError(f"{env_name}: expected {kind}, got {raw!r}") from None


def settings_from(values: Mapping[str, Any]) -> Settings:
    """Settings with ``values`` (by environment name, lower case) over the defaults, checked."""
    defaults = setting_values(_DEFAULTS)
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown settings {', '.join(unknown)}")
    top: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for group, item in SETTING_FIELDS:
        name = item.metadata["env"]
        if name not in values:
            continue
        value = _coerce(name, values[name], defaults[name])
        if group is None:
            top[item.name] = value
        else:
            groups.setdefault(group, {})[item.name] = value
    for group, changes in groups.items():
        top[group] = dataclasses.replace(getattr(_DEFAULTS, group), **changes)
    settings = Settings(**top)
    validate(settings)
    return settings


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from a TOML file, the environment and explicit overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if config_file is None and environ.get(CONFIG_ENV):
        config_file = Path(environ[CONFIG_ENV])
    if config_file is not None:
        try:
            with open(config_file, "rb") as handle:
                document = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
        unknown = sorted(set(document) - set(SETTING_NAMES))
        if unknown:
            raise ConfigError(f"config file {config_file}: unknown settings {', '.join(unknown)}")
        values.update(document)
    for name in SETTING_NAMES:
        env_name = f"{ENV_PREFIX}{name.upper()}"
        if env_name in environ:
            values[name] = environ[env_name]
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    return settings_from(values)
