"""Trunkline's settings: frozen, typed, grouped, and parsed once at start-up."""

from trunkline.config.groups import (
    ApiSettings,
    CallPolicy,
    CarrierSettings,
    LogFormat,
    LogLevel,
    MediaSettings,
    ProcessSettings,
    Settings,
    SipSettings,
    SpeechEngine,
    SpeechSettings,
    SrtpPolicy,
    StorageSettings,
    TranscriptionEngine,
    VadEngine,
)
from trunkline.config.loading import (
    SETTING_NAMES,
    describe_settings,
    load_settings,
    setting_text,
    setting_values,
    settings_from,
)
from trunkline.config.validation import ENV_PREFIX, ConfigError

__all__ = [
    "ENV_PREFIX",
    "SETTING_NAMES",
    "ApiSettings",
    "CallPolicy",
    "CarrierSettings",
    "ConfigError",
    "LogFormat",
    "LogLevel",
    "MediaSettings",
    "ProcessSettings",
    "Settings",
    "SipSettings",
    "SpeechEngine",
    "SpeechSettings",
    "SrtpPolicy",
    "StorageSettings",
    "TranscriptionEngine",
    "VadEngine",
    "describe_settings",
    "load_settings",
    "setting_text",
    "setting_values",
    "settings_from",
]
