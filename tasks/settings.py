"""System settings (MailboxSyncInterval, EmailProcessTag, MaxFileSize): checked changes."""

from sqlmodel import Session

from models import DEFAULT_SETTINGS, SystemSetting, get_setting
from tasks.errors import ConfigError

# What each setting holds, and the smallest value that makes sense for a number.
NUMBERS = {"MailboxSyncInterval": 1, "MaxFileSize": 1024}
DEPLOYED = frozenset({"MailboxSyncInterval", "EmailProcessTag"})  # written into prefect.yaml


def list_settings(session: Session) -> list[dict[str, str]]:
    return [
        {"key": key, "value": get_setting(session, key), "default": default}
        for key, default in DEFAULT_SETTINGS.items()
    ]


def set_setting(session: Session, key: str, value: str) -> tuple[str, str]:
    """Store a setting after checking it; returns its name and the stored value."""
    known = {name.lower(): name for name in DEFAULT_SETTINGS}
    if key.lower() not in known:
        raise ConfigError(
            f"unknown setting {key!r}; the settings are {', '.join(DEFAULT_SETTINGS)}"
        )
    key, value = known[key.lower()], value.strip()
    if key in NUMBERS:
        if not value.isdigit() or int(value) < NUMBERS[key]:
            raise ConfigError(f"{key} must be a whole number of at least {NUMBERS[key]}")
        value = str(int(value))
    elif not value or any(c in value for c in "\r\n,"):
        raise ConfigError(f"{key} must be one line of text without commas")
    row = session.get(SystemSetting, key)
    if row is None:
        session.add(SystemSetting(key=key, value=value))
    else:
        row.value = value
    return key, value
