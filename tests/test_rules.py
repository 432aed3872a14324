"""Binding rule files (SPEC 4.3): schema, errors with file and line, RE2, `inboxflow rules`."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inboxflow.cli import app
from tasks.rules import DEFAULT_RULES_DIR, SCHEMA_FILE, json_schema, load_rules, read_rule_file

runner = CliRunner()


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    return [str(p) for p in read_rule_file(path)[1]]


def test_shipped_rules_load_cleanly_and_cover_invoices_orders_contracts() -> None:
    book = load_rules(DEFAULT_RULES_DIR)

    assert book.problems == []
    assert {r.target for r in book.enabled} == {
        "Invoice.number",
        "Order.number",
        "Contract.number",
    }
    invoice = next(r for r in book.rules if r.record_type == "Invoice")
    assert invoice.values("Re: Inv-53 and Inv-54, again Inv-53") == ["Inv-53", "Inv-54"]
    assert invoice.values("Inv-530x") == []


def test_shipped_json_schema_is_up_to_date() -> None:
    assert (DEFAULT_RULES_DIR / SCHEMA_FILE).read_text() == json_schema()


def test_invalid_pattern_is_reported_with_file_line_and_reason_and_the_next_rule_loads(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "mixed.yaml",
        """# two rules, the first broken
rules:
  - name: Broken
    target: Invoice.Number
    pattern: '(Inv-\\d+'
  - name: Orders
    pattern: '\\bOrd-\\d+\\b'
    target: Order.Number
""",
    )

    rules, problems = read_rule_file(path)

    assert [r.name for r in rules] == ["Orders"]
    (problem,) = problems
    assert problem.line == 5 and problem.file.endswith("mixed.yaml")
    assert str(problem).endswith(
        "mixed.yaml:5: rule 'Broken': invalid pattern '(Inv-\\\\d+': missing ): (Inv-\\d+ "
        "(RE2 syntax: no look-around, no back-references)"
    )


@pytest.mark.parametrize(
    ("rule", "line", "reason"),
    [
        ("    pattern: 'x'\n    target: Invoice.Number\n    colour: red\n", 5, "colour: Extra"),
        ("    pattern: 'x'\n    target: Ticket.Number\n", 4, "unknown target record type"),
        ("    pattern: 'x'\n    target: Invoice.Amount\n", 4, "Invoice has Number"),
        ("    pattern: 'x'\n    target: Invoice.Number\n    column: From\n", 5, "column: Input"),
        ("    pattern: '(?<=Inv-)\\d+'\n    target: Invoice.Number\n", 3, "invalid perl operator"),
        ('    pattern: "\\bInv"\n    target: Invoice.Number\n', 3, "single quotes"),
        ("    target: Invoice.Number\n", 2, "pattern: Field required"),
    ],
)
def test_broken_rules_name_the_line_and_the_reason(
    tmp_path: Path, rule: str, line: int, reason: str
) -> None:
    path = write(tmp_path, "r.yaml", "rules:\n  - name: R\n" + rule)

    (problem,) = problems_of(path)

    assert problem.startswith(f"r.yaml:{line}: rule 'R': ") or problem.startswith(
        f"{path}:{line}: rule 'R': "
    )
    assert reason in problem


def test_not_yaml_and_wrong_shapes_are_reported(tmp_path: Path) -> None:
    assert (
        "r.yaml:3: not valid YAML"
        in problems_of(write(tmp_path, "r.yaml", "rules:\n  - name: x\n  pattern: [\n"))[0]
    )
    assert "'rules' must be a list" in problems_of(write(tmp_path, "s.yaml", "rules: 3\n"))[0]
    assert (
        "unknown key 'rule'" in problems_of(write(tmp_path, "t.yaml", "rule: []\nrules: []\n"))[0]
    )


def test_duplicate_rule_names_and_disabled_rules(tmp_path: Path) -> None:
    rule = "rules:\n  - name: Same\n    pattern: 'Ord-\\d+'\n    target: Order.Number\n"
    write(tmp_path, "a.yaml", rule)
    write(
        tmp_path,
        "b.yaml",
        rule + "  - name: Off\n    pattern: x\n    target: Lead.Name\n    enabled: false\n",
    )

    book = load_rules(tmp_path)

    assert [r.name for r in book.rules] == ["Same", "Off"]
    assert [r.name for r in book.enabled] == ["Same"]
    (problem,) = book.problems
    assert "b.yaml:2: rule 'Same': name already used at" in str(problem)
    assert "a.yaml:2" in str(problem)


def test_a_value_group_picks_the_number_out_of_a_longer_match(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "r.yaml",
        "rules:\n  - name: R\n    pattern: 'invoice (?P<value>Inv-\\d+)'\n"
        "    target: Invoice.Number\n    column: body\n",
    )
    (rule,), _ = read_rule_file(path)

    assert rule.column == "body"
    assert rule.values("see invoice Inv-7 and Inv-8") == ["Inv-7"]


def test_catastrophic_backtracking_pattern_runs_in_linear_time(tmp_path: Path) -> None:
    write(tmp_path, "r.yaml", "rules:\n  - name: R\n    pattern: '(a+)+$'\n    target: Lead.Name\n")
    book = load_rules(tmp_path)
    (rule,) = book.rules
    subject = "a" * 90_000 + "!"  # under MAX_TEXT: longer texts are cut there

    started = time.perf_counter()
    for _ in range(20):
        assert book.candidates("subject", subject) == []
        assert rule.values(subject) == []

    assert time.perf_counter() - started < 2


# the commands ------------------------------------------------------------------------------------


@pytest.fixture
def rules_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "rules"
    folder.mkdir()
    monkeypatch.setenv("INBOXFLOW_RULES_DIR", str(folder))
    yield folder


def test_rules_validate_lists_rules_and_fails_on_problems(rules_env: Path) -> None:
    write(rules_env, "good.yaml", "rules:\n  - name: G\n    pattern: 'x'\n    target: Lead.Name\n")
    ok = runner.invoke(app, ["rules", "validate"])
    write(rules_env, "bad.yaml", "rules:\n  - name: B\n    pattern: '('\n    target: Lead.Name\n")
    bad = runner.invoke(app, ["rules", "validate"])

    assert ok.exit_code == 0, ok.output
    assert "good.yaml:2: 'G': subject → Lead.name" in ok.stdout
    assert "1 rule(s) usable, 0 problem(s)" in ok.stdout
    assert bad.exit_code == 1
    assert "bad.yaml:3: rule 'B': invalid pattern" in bad.stderr
    assert "Traceback" not in bad.output


def test_rules_validate_on_a_missing_folder_is_one_clear_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["rules", "validate", "--rules-dir", str(tmp_path / "nope")])

    assert result.exit_code == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.output
