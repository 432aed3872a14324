"""Providers and mailboxes from the CLI: detection, login formats, refusals, no secrets stored."""

import json

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from inboxflow.cli import app
from models import get_engine

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def add_acme(login_format: str = "email") -> None:
    result = invoke(
        "provider",
        "add",
        "acme",
        "--imap",
        "imap.acme.example:993",
        "--imap-security",
        "ssl",
        "--smtp",
        "smtp.acme.example:587",
        "--smtp-security",
        "starttls",
        "--login-format",
        login_format,
        "--domain",
        "acme.example",
        "--domain",
        "acme.test",
    )
    assert result.exit_code == 0, result.output


def test_provider_add_and_list_as_json(database):
    add_acme()
    result = invoke("provider", "list", "--json")
    (provider,) = json.loads(result.stdout)
    assert provider["imap"] == "imap.acme.example:993"
    assert provider["smtp"] == "smtp.acme.example:587"
    assert provider["smtp_timeout"] == 40
    assert provider["domains"] == ["acme.example", "acme.test"]
    assert provider["files_sent_mail"] is False


def test_provider_that_files_sent_mail_itself(database):
    result = invoke(
        "provider", "add", "gmail", "--imap", "imap.gmail.com:993", "--smtp",
        "smtp.gmail.com:465", "--files-sent-mail", "--domain", "gmail.com",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (provider,) = json.loads(invoke("provider", "list", "--json").stdout)
    assert provider["files_sent_mail"] is True


@pytest.mark.parametrize(
    ("login_format", "expected"),
    [("email", "ann@acme.example"), ("username", "ann")],
)
def test_mailbox_detects_provider_and_derives_login(database, login_format, expected):
    add_acme(login_format)
    result = invoke(
        "mailbox",
        "add",
        "Ann@Acme.example",
        "--password-env",
        "ANN_PW",
        "--folders",
        "INBOX,Support",
        "--first-sync",
        "1w",
    )
    assert result.exit_code == 0, result.output
    (mailbox,) = json.loads(invoke("mailbox", "list", "--json").stdout)
    assert mailbox["provider"] == "acme"
    assert mailbox["login"] == expected
    assert mailbox["folders"] == ["INBOX", "Support"]
    assert mailbox["first_sync"] == "1w"
    assert mailbox["credential"] == "env:ANN_PW"


def test_manual_login_format_requires_a_login(database):
    add_acme("manual")
    result = invoke("mailbox", "add", "ann@acme.example", "--password-env", "X")
    assert result.exit_code == 1
    assert "pass --login" in result.stderr


def test_unknown_domain_says_how_to_fix_it(database):
    result = invoke("mailbox", "add", "bob@nowhere.example", "--password-env", "X")
    assert result.exit_code == 1
    assert "no provider serves the domain 'nowhere.example'" in result.stderr
    assert "Traceback" not in result.output


def test_provider_with_mailboxes_cannot_be_removed(database):
    add_acme()
    invoke("mailbox", "add", "ann@acme.example", "--password-env", "X")
    result = invoke("provider", "remove", "acme")
    assert result.exit_code == 1
    assert "still has 1 mailbox" in result.stderr
    assert json.loads(invoke("provider", "list", "--json").stdout)[0]["name"] == "acme"


def test_password_never_reaches_the_database(database, monkeypatch):
    monkeypatch.setenv("ANN_PW", "hunter2-very-secret")
    add_acme()
    invoke("mailbox", "add", "ann@acme.example", "--password-env", "ANN_PW")
    with get_engine().connect() as connection:
        rows = connection.execute(text("SELECT * FROM mailbox")).all()
    assert rows and all("hunter2" not in str(row) for row in rows)


def test_bad_host_port_is_one_clear_line(database):
    result = invoke("provider", "add", "x", "--imap", "no-port-here")
    assert result.exit_code == 1
    assert result.stderr.strip() == "inboxflow: --imap must be HOST:PORT, got 'no-port-here'"
