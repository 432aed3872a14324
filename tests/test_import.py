"""Upload emails: .eml files, mbox and Maildir through the sync's path (SPEC 3)."""

import mailbox
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inboxflow.cli import app
from tests.support.messages import make_message

pytestmark = pytest.mark.usefixtures("prefect_api")
runner = CliRunner()
ADDRESS = "sales@northwind.example"


@pytest.fixture
def target_mailbox(database) -> str:
    for args in (
        [
            "provider",
            "add",
            "nw",
            "--imap",
            "imap.northwind.example:993",
            "--domain",
            "northwind.example",
        ],
        ["mailbox", "add", ADDRESS, "--password-env", "NW_PW"],
    ):
        assert runner.invoke(app, args).exit_code == 0
    return ADDRESS


def emails(*extra: str) -> list[dict]:
    import json

    result = runner.invoke(app, ["emails", "list", "--limit", "0", "--json", *extra])
    return json.loads(result.stdout)


def test_import_eml_folder_then_again_stores_nothing_twice(target_mailbox, tmp_path):
    folder = tmp_path / "eml"
    folder.mkdir()
    for i in range(12):
        (folder / f"{i:02}.eml").write_bytes(make_message(i).raw)
    (folder / "notes.txt").write_text("not an email")

    first = runner.invoke(app, ["import", str(folder), "--mailbox", target_mailbox])
    second = runner.invoke(app, ["import", str(folder), "--mailbox", target_mailbox])

    assert "12 messages read: 12 stored" in first.stdout
    assert "12 messages read: 0 stored, 12 already there" in second.stdout
    assert len(emails()) == 12


def test_import_mbox_file(target_mailbox, tmp_path):
    path = tmp_path / "archive.mbox"
    box = mailbox.mbox(path)
    for i in range(7):
        box.add(make_message(i).raw)
    box.close()

    result = runner.invoke(
        app, ["import", str(path), "--mailbox", target_mailbox, "--folder", "Archive"]
    )

    assert result.exit_code == 0, result.output
    listed = emails("--folder", "Archive")
    assert len(listed) == 7
    assert {e["message_id"] for e in listed} == {f"<msg-{i}@customer.example>" for i in range(7)}


def test_import_maildir_keeps_its_folders(target_mailbox, tmp_path):
    root = mailbox.Maildir(tmp_path / "Maildir")
    for i in range(3):
        root.add(make_message(i).raw)
    support = root.add_folder("Support")
    for i in range(3, 5):
        support.add(make_message(i).raw)

    result = runner.invoke(app, ["import", str(tmp_path / "Maildir"), "--mailbox", target_mailbox])

    assert result.exit_code == 0, result.output
    folders = sorted(e["folder"] for e in emails())
    assert folders == ["INBOX", "INBOX", "INBOX", "Support", "Support"]


def test_import_of_missing_path_is_one_clear_line(target_mailbox, tmp_path):
    result = runner.invoke(app, ["import", str(tmp_path / "nope"), "--mailbox", target_mailbox])
    assert result.exit_code == 1
    assert "no such file or folder" in result.stderr
    assert "Traceback" not in result.output


def test_import_into_unknown_mailbox_is_refused(target_mailbox, tmp_path):
    path: Path = tmp_path / "one.eml"
    path.write_bytes(make_message(1).raw)
    result = runner.invoke(app, ["import", str(path), "--mailbox", "who@nowhere.example"])
    assert result.exit_code == 1
    assert "no mailbox who@nowhere.example" in result.stderr
