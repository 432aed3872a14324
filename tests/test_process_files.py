"""Process files (SPEC 6): the format, its errors with file and line, JSON Schema, prefect.yaml."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from inboxflow.cli import app
from models import DEFAULT_SETTINGS
from tasks.deployments import PREFECT_YAML, render_prefect_yaml
from tasks.process_spec import (
    DEFAULT_PROCESSES_DIR,
    json_schema,
    load_processes,
    read_process_file,
)

runner = CliRunner()

GOOD = """\
name: Thank every sender
version: 2
description: Says thank you.
steps:
  - id: contact
    name: Find the sender
    uses: contact.find_or_create
    with: { email: "{{ email.from_address }}" }
  - name: Thank them
    uses: email.reply
    with: { body: "Thank you, {{ contact.name }}" }
"""

# Acceptance 4: a typo in a key (line 7), a missing step input (record.create
# without object, line 11) and an unknown action (line 13).
THREE_MISTAKES = """\
name: Broken on purpose
version: 1
steps:
  - id: contact
    name: Find the sender
    uses: contact.find_or_create
    wiht: { email: "{{ email.from_address }}" }
  - id: lead
    name: Create the lead
    uses: record.create
    with: { values: { source: Email } }
  - name: Tell someone
    uses: email.sned
    with: { body: "{{ lead.id }}" }
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_processes_are_valid() -> None:
    book = load_processes(DEFAULT_PROCESSES_DIR)
    assert book.problems == []
    assert set(book.processes) == {"create-lead", "register-case"}
    for process in book.processes.values():
        assert process.trigger is not None, f"{process.key} starts by itself for new mail"


def test_shipped_json_schema_is_up_to_date() -> None:
    assert (DEFAULT_PROCESSES_DIR / "process.schema.json").read_text() == json_schema()


def test_prefect_yaml_agrees_with_processes() -> None:
    """prefect.yaml is written by `inboxflow processes deploy`: run it after changing processes/."""
    book = load_processes(DEFAULT_PROCESSES_DIR)
    expected = render_prefect_yaml(
        book, int(DEFAULT_SETTINGS["MailboxSyncInterval"]), DEFAULT_SETTINGS["EmailProcessTag"]
    )
    assert PREFECT_YAML.read_text(encoding="utf-8") == expected, (
        "prefect.yaml and processes/ disagree: run `inboxflow processes deploy`"
    )


def test_prefect_yaml_has_one_tagged_deployment_per_process() -> None:
    deployments = {d["name"]: d for d in yaml.safe_load(PREFECT_YAML.read_text())["deployments"]}
    for key in ("create-lead", "register-case"):
        deployment = deployments[key]
        assert deployment["entrypoint"] == "flows/email_process.py:email_process"
        assert deployment["tags"][0] == "Email Process"  # the UI shows the first tag only
        assert deployment["parameters"] == {"process": key}
    assert deployments["mailbox-sync"]["schedules"] == [{"interval": 300}]
    assert {"initial-processing", "outbound-sending", "email-import"} <= set(deployments)


def test_three_mistakes_give_three_clear_errors_with_lines(tmp_path: Path) -> None:
    process, problems = read_process_file(write(tmp_path, "broken.yaml", THREE_MISTAKES))
    assert process is None
    by_line = {p.line: p.reason for p in problems}
    assert sorted(by_line) == [7, 11, 13], problems
    assert "unknown key 'wiht'" in by_line[7] and "did you mean 'with'" in by_line[7]
    assert "step 'contact'" in by_line[7]
    assert "missing input 'object'" in by_line[11] and "step 'lead'" in by_line[11]
    assert "unknown action 'email.sned'" in by_line[13]
    assert "did you mean 'email.send'" in by_line[13]
    assert all(p.file.endswith("broken.yaml") for p in problems)


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("name: x\nsteps: [\n", 3, "not valid YAML"),
        ("name: x\nsteps: []\n", 2, "steps"),
        (GOOD.replace("{{ contact.name }}", "{{ contakt.name }}"), 11, "did you mean 'contact'"),
        (GOOD.replace("{{ contact.name }}", "{{ contact.name }"), 11, "expression"),
        (GOOD.replace("version: 2", "version: two"), 2, "version"),
        (GOOD.replace("uses: email.reply", "uses: email.reply\n    if: 'a +'"), 11, "if"),
        (GOOD.replace("id: contact", "id: email"), 5, "taken by the built-in"),
        (GOOD + "on:\n  email_received:\n    subject_matches: '(a'\n", 14, "invalid pattern"),
        (GOOD.replace("{ body:", "{ subject: Hi, bdy:"), 11, "unknown key 'bdy'"),
        (
            GOOD.replace("uses: email.reply", "uses: record.create").replace(
                '{ body: "Thank you, {{ contact.name }}" }', "{ object: Lead, values: { nme: x } }"
            ),
            11,
            "Lead has no column 'nme' (did you mean 'name'?)",
        ),
    ],
)
def test_broken_files_are_reported_with_line_and_reason(
    tmp_path: Path, text: str, line: int, expected: str
) -> None:
    process, problems = read_process_file(write(tmp_path, "p.yaml", text))
    assert process is None
    assert any(p.line == line and expected in p.reason for p in problems), problems


def test_a_broken_file_never_stops_the_others(tmp_path: Path) -> None:
    write(tmp_path, "a-good.yaml", GOOD)
    write(tmp_path, "b-broken.yaml", THREE_MISTAKES)
    write(tmp_path, "Bad Name.yaml", GOOD)
    book = load_processes(tmp_path)
    assert list(book.processes) == ["a-good"]
    assert {Path(p.file).name for p in book.problems} == {"b-broken.yaml", "Bad Name.yaml"}
    assert book.processes["a-good"].spec.version == 2
    assert [s.id for s in book.processes["a-good"].steps] == ["contact", None]


def test_cli_validate_lists_problems_and_fails(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    broken = write(tmp_path, "broken.yaml", THREE_MISTAKES)
    result = runner.invoke(app, ["processes", "validate", str(good), str(broken)])
    assert result.exit_code == 1
    assert "ok" in result.stdout and "good.yaml" in result.stdout
    assert result.stderr.count("broken.yaml:") == 3
    assert "Traceback" not in result.output


def test_cli_schema_is_json_schema_with_every_action() -> None:
    result = runner.invoke(app, ["processes", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    text = json.dumps(schema)
    for action in ("contact.find_or_create", "record.create", "email.reply", "stop"):
        assert f'"const": "{action}"' in text or f'"enum": ["{action}"]' in text


def test_cli_list_shows_tag_trigger_and_deployment(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INBOXFLOW_PROCESSES_DIR", str(DEFAULT_PROCESSES_DIR))
    result = runner.invoke(app, ["processes", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["process"]: row for row in json.loads(result.stdout)}
    assert rows["create-lead"]["tag"] == "Email Process"
    assert rows["create-lead"]["deployment"] == "email-process/create-lead"
    assert rows["register-case"]["trigger"].startswith("new email: subject ~")


def test_deploy_writes_a_deployment_for_a_new_file(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "processes"
    shutil.copytree(DEFAULT_PROCESSES_DIR, folder)
    write(folder, "thank-sender.yaml", GOOD)
    target = tmp_path / "prefect.yaml"
    monkeypatch.setenv("INBOXFLOW_PROCESSES_DIR", str(folder))
    monkeypatch.setenv("INBOXFLOW_PREFECT_YAML", str(target))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    result = runner.invoke(app, ["processes", "deploy"])
    assert result.exit_code == 0, result.output
    deployments = {d["name"]: d for d in yaml.safe_load(target.read_text())["deployments"]}
    assert deployments["thank-sender"]["parameters"] == {"process": "thank-sender"}
    assert deployments["thank-sender"]["tags"] == ["Email Process", "inboxflow"]
    assert deployments["thank-sender"]["version"] == "2"


def test_deploy_takes_interval_and_tag_from_the_settings(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "prefect.yaml"
    monkeypatch.setenv("INBOXFLOW_PREFECT_YAML", str(target))
    monkeypatch.setenv("INBOXFLOW_PROCESSES_DIR", str(DEFAULT_PROCESSES_DIR))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    for key, value in (("MailboxSyncInterval", "10"), ("emailprocesstag", "Sales Process")):
        result = runner.invoke(app, ["settings", "set", key, value])
        assert result.exit_code == 0, result.output
        assert "inboxflow processes deploy" in result.stdout
    refused = runner.invoke(app, ["settings", "set", "MailboxSyncInterval", "0"])
    assert refused.exit_code == 1 and "at least 1" in refused.stderr
    assert runner.invoke(app, ["processes", "deploy"]).exit_code == 0
    deployments = {d["name"]: d for d in yaml.safe_load(target.read_text())["deployments"]}
    assert deployments["mailbox-sync"]["schedules"] == [{"interval": 600}]
    assert deployments["create-lead"]["tags"] == ["Sales Process", "inboxflow"]
