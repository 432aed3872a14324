"""Credential references resolve at connect time and secrets never show in reprs."""

import pytest

from tasks.credentials import resolve_credential
from tasks.errors import CredentialError
from tasks.imap import ImapSettings
from tasks.smtp import SmtpSettings


def test_env_reference_resolves_and_a_missing_variable_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("ANN_PW", "s3cret")
    assert resolve_credential("env:ANN_PW", "ann@x.example") == "s3cret"
    monkeypatch.delenv("ANN_PW")
    with pytest.raises(CredentialError, match="ann@x.example: environment variable ANN_PW"):
        resolve_credential("env:ANN_PW", "ann@x.example")


def test_unknown_reference_kind_is_refused():
    with pytest.raises(CredentialError, match="neither env:VAR nor secret:NAME"):
        resolve_credential("plain:hunter2", "ann@x.example")


@pytest.mark.parametrize("settings_type", [ImapSettings, SmtpSettings])
def test_settings_repr_never_shows_the_secret(settings_type):
    settings = settings_type(
        address="ann@x.example", host="h", port=1, security="ssl", login="ann", secret="hunter2"
    )
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)
