r"""Binding rules: the analysts' rules/*.yaml files, checked and compiled (SPEC 4, step 3).

A rule file holds a list of rules::

    rules:
      - name: Invoice number in the subject
        pattern: '\bInv-\d+\b'     # RE2 syntax; single quotes keep the backslashes
        column: Subject            # Subject (default) or Body
        target: Invoice.Number     # record type and the column the matched text must equal
        enabled: true              # default true

When the pattern matches and the matched text (or its group named ``value``) equals
the target column of an existing record, the email's connection field for that
record type is set. Patterns run on RE2, whose matching time is linear in the text:
a pattern from a file cannot hang the engine, whatever it is.

A broken rule is reported as ``file:line: reason`` and left out; the other rules of
the file and of the other files still load (``RuleBook.problems``).
"""

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import re2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import String, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from models import BindingRule
from models.db import PROJECT_ROOT
from models.emails import Email
from models.records import RECORD_TYPES
from tasks.analyst_files import FileProblem, read_yaml
from tasks.errors import ConfigError

DEFAULT_RULES_DIR = PROJECT_ROOT / "rules"
SCHEMA_FILE = "rules.schema.json"
# Bounded work per email: the text a rule reads and the matches it looks up.
MAX_TEXT = 100_000
MAX_VALUES = 10
VALUE_GROUP = "value"
TEXT_FIELDS = ("name", "pattern", "column", "target", "description")


class RuleError(ConfigError):
    """A rule file cannot be used: it is missing, not YAML, or a rule in it is broken."""


class RuleSpec(BaseModel):
    """One binding rule as an analyst writes it."""

    model_config = ConfigDict(extra="forbid", title="Binding rule")

    name: str = Field(min_length=1, description="Unique name, shown on every email it binds.")
    pattern: str = Field(
        min_length=1,
        description="RE2 regular expression (no look-around, no back-references). The whole "
        "match, or the group named 'value', must equal the target column of a record.",
    )
    column: Literal["Subject", "Body"] = Field(
        default="Subject", description="The email column the pattern runs on."
    )
    target: str = Field(
        pattern=r"^[A-Za-z]+\.[A-Za-z_]+$",
        description="Record type and column, e.g. Invoice.Number "
        f"(record types: {', '.join(RECORD_TYPES)}).",
        examples=["Invoice.Number", "Order.Number", "Contract.Number"],
    )
    enabled: bool = Field(default=True, description="A disabled rule is checked but not applied.")
    description: str = Field(default="", description="What the rule is for (free text).")

    @field_validator("column", mode="before")
    @classmethod
    def _column_any_case(cls, value: Any) -> Any:
        return value.strip().capitalize() if isinstance(value, str) else value


class RuleFileSpec(BaseModel):
    """A rules/*.yaml file."""

    model_config = ConfigDict(extra="forbid", title="inboxflow binding rules")

    rules: list[RuleSpec] = Field(description="The rules, applied in this order.")


@dataclass(frozen=True)
class Rule:
    """A checked rule, its pattern compiled with RE2."""

    name: str
    pattern: str
    column: str  # "subject" or "body"
    record_type: str  # a key of RECORD_TYPES
    record_column: str  # a string column of that record type
    enabled: bool
    file: str
    line: int
    regex: Any = field(compare=False, repr=False)

    @property
    def email_field(self) -> str:
        return connection_field(self.record_type)

    @property
    def target(self) -> str:
        return f"{self.record_type}.{self.record_column}"

    def values(self, text: str) -> list[str]:
        """The distinct texts the pattern matches, in order (at most MAX_VALUES)."""
        found: list[str] = []
        use_group = VALUE_GROUP in self.regex.groupindex
        for match in self.regex.finditer(text[:MAX_TEXT]):
            value = match.group(VALUE_GROUP) if use_group else match.group(0)
            if value and value not in found:
                found.append(value)
                if len(found) == MAX_VALUES:
                    break
        return found


@dataclass
class RuleBook:
    """The rules of one run, in order, and what was wrong with the files."""

    rules: list[Rule] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)

    @property
    def enabled(self) -> list[Rule]:
        return [rule for rule in self.rules if rule.enabled]

    def uses(self, column: str) -> bool:
        return any(rule.column == column for rule in self.enabled)

    def candidates(self, column: str, text: str) -> list[Rule]:
        """The enabled rules on this column whose pattern matches the text somewhere.

        One RE2 Set scan answers for all rules at once (a few microseconds), so the
        cost per email hardly grows with the number of rules.
        """
        rules, matcher = self._sets.get(column, ([], None))
        if not rules or not text:
            return []
        text = text[:MAX_TEXT]
        if matcher is None:
            return [rule for rule in rules if rule.regex.search(text)]
        return [rules[i] for i in sorted(matcher.Match(text) or ())]

    @cached_property
    def _sets(self) -> dict[str, tuple[list[Rule], Any]]:
        sets: dict[str, tuple[list[Rule], Any]] = {}
        for column in ("subject", "body"):
            rules = [rule for rule in self.enabled if rule.column == column]
            sets[column] = (rules, _compile_set(rules) if rules else None)
        return sets


def connection_field(record_type: str) -> str:
    """The Email column that links to a record type: Invoice → invoice_id."""
    return f"{record_type.lower()}_id"


def rules_dir(directory: str | Path | None = None) -> Path:
    """Where rule files are read: the argument, INBOXFLOW_RULES_DIR, or the project's rules/."""
    chosen = directory or os.environ.get("INBOXFLOW_RULES_DIR") or DEFAULT_RULES_DIR
    return Path(chosen)


def load_rules(directory: str | Path | None = None) -> RuleBook:
    """Every rule of every *.yaml file in the rules folder, files in name order."""
    folder = rules_dir(directory)
    if not folder.is_dir():
        raise RuleError(f"rules folder {folder} does not exist (set INBOXFLOW_RULES_DIR)")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return load_rule_files(files)


def load_rule_files(files: Iterable[Path]) -> RuleBook:
    book = RuleBook()
    first_use: dict[str, str] = {}  # rule name → file:line where it is defined
    for path in files:
        rules, problems = read_rule_file(path)
        book.problems.extend(problems)
        for rule in rules:
            if rule.name in first_use:
                reason = f"rule {rule.name!r}: name already used at {first_use[rule.name]}"
                book.problems.append(FileProblem(rule.file, rule.line, reason))
                continue
            first_use[rule.name] = f"{rule.file}:{rule.line}"
            book.rules.append(rule)
    return book


def read_rule_file(path: Path) -> tuple[list[Rule], list[FileProblem]]:
    """The usable rules of one file and a problem (file, line, reason) for each broken one."""
    loaded = read_yaml(path)
    if isinstance(loaded, FileProblem):
        return [], [loaded]
    shown, root, data = loaded.shown, loaded.root, loaded.data
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        return [], [FileProblem(shown, 1, "expected a mapping with a 'rules:' list")]
    problems = [
        FileProblem(shown, _key_line(root, key), f"unknown key {key!r} (only 'rules' is allowed)")
        for key in data
        if key != "rules"
    ]
    items = data.get("rules")
    items_node = _value_node(root, "rules")
    if not isinstance(items, list) or not isinstance(items_node, yaml.SequenceNode):
        line = _key_line(root, "rules") if "rules" in data else 1
        return [], [*problems, FileProblem(shown, line, "'rules' must be a list of rules")]
    rules = []
    for item, node in zip(items, items_node.value, strict=True):
        rule = _check_rule(item, node, shown, problems)
        if rule is not None:
            rules.append(rule)
    return rules, problems


def _check_rule(item: Any, node: yaml.Node, file: str, problems: list[FileProblem]) -> Rule | None:
    line = node.start_mark.line + 1
    if not isinstance(item, dict):
        problems.append(FileProblem(file, line, "a rule must be a mapping (name, pattern, ...)"))
        return None
    # YAML 1.1 reads `name: Off` as false and `pattern: 123` as a number: text fields
    # take the scalar as written.
    item = dict(item)
    for key in TEXT_FIELDS:
        value_node = _value_node(node, key)
        if isinstance(value_node, yaml.ScalarNode) and item.get(key) is not None:
            item[key] = value_node.value
    label = f"rule {item['name']!r}" if isinstance(item.get("name"), str) else "rule"
    try:
        spec = RuleSpec.model_validate(item)
    except ValidationError as exc:
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else ""
            where = _key_line(node, key) if key in item else line
            problems.append(FileProblem(file, where, f"{label}: {key or 'rule'}: {error['msg']}"))
        return None
    try:
        regex = compile_pattern(spec.pattern)
    except RuleError as exc:
        problems.append(FileProblem(file, _key_line(node, "pattern"), f"{label}: {exc}"))
        return None
    try:
        record_type, record_column = resolve_target(spec.target)
    except RuleError as exc:
        problems.append(FileProblem(file, _key_line(node, "target"), f"{label}: {exc}"))
        return None
    return Rule(
        name=spec.name,
        pattern=spec.pattern,
        column=spec.column.lower(),
        record_type=record_type,
        record_column=record_column,
        enabled=spec.enabled,
        file=file,
        line=line,
        regex=regex,
    )


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # we report the reason ourselves, once, with file and line
    return options


def compile_pattern(pattern: str) -> Any:
    """Compile with RE2 or raise RuleError with the reason."""
    if "\b" in pattern:
        raise RuleError(
            "invalid pattern: it contains a backspace character; YAML turned \\b into one "
            "inside double quotes: write the pattern in single quotes"
        )
    try:
        return re2.compile(pattern, _re2_options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RuleError(
            f"invalid pattern {pattern!r}: {reason} "
            "(RE2 syntax: no look-around, no back-references)"
        ) from exc


def resolve_target(target: str) -> tuple[str, str]:
    """Invoice.Number → ("Invoice", "number"): a record type and one of its text columns."""
    type_name, _, column_name = target.partition(".")
    record_type = next((t for t in RECORD_TYPES if t.lower() == type_name.lower()), None)
    if record_type is None:
        raise RuleError(
            f"unknown target record type {type_name!r} in {target!r}; "
            f"use one of {', '.join(RECORD_TYPES)}"
        )
    if not hasattr(Email, connection_field(record_type)):
        raise RuleError(f"emails have no connection field for {record_type}")
    table = RECORD_TYPES[record_type].__table__  # type: ignore[attr-defined]
    texts = [c.name for c in table.columns if is_text_type(c.type) and not c.foreign_keys]
    column = next((c for c in texts if c.lower() == column_name.lower()), None)
    if column is None:
        raise RuleError(
            f"unknown target column {column_name!r} in {target!r}; "
            f"{record_type} has {', '.join(c.capitalize() for c in texts)}"
        )
    return record_type, column


def is_text_type(column_type: Any) -> bool:
    # SQLModel's AutoString is a TypeDecorator around String, not a String itself.
    return isinstance(column_type, String) or isinstance(getattr(column_type, "impl", None), String)


def _compile_set(rules: list[Rule]) -> Any:
    """One RE2 Set for all rules of a column; None when RE2 refuses (then rules run one by one)."""
    matcher = re2.Set.SearchSet(_re2_options())
    try:
        for rule in rules:
            matcher.Add(rule.pattern)
        matcher.Compile()
    except re2.error:
        return None
    return matcher


def _value_node(mapping: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(mapping, yaml.MappingNode):
        for key_node, value_node in mapping.value:
            if key_node.value == key:
                return value_node
    return None


def _key_line(mapping: yaml.Node, key: str) -> int:
    if isinstance(mapping, yaml.MappingNode):
        for key_node, _ in mapping.value:
            if key_node.value == key:
                return key_node.start_mark.line + 1
    return mapping.start_mark.line + 1


def json_schema() -> str:
    """The rule file schema as JSON Schema, for editors (rules/rules.schema.json)."""
    return json.dumps(RuleFileSpec.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


def record_rules(session: Session, book: RuleBook) -> None:
    """Mirror the usable rules into the binding_rule table (SPEC 2: BindingRule, loaded
    from rules/), so a rule named by ``Email.bound_by_rule`` can be looked up in the
    database: one row per rule, updated when its file changes, removed with it.

    Runs that load the same new rule at once may race to insert it: the loser's
    insert fails on the unique name, and the winner's row is the same rule.
    """
    wanted = {
        rule.name: {
            "pattern": rule.pattern,
            "column": rule.column,
            "target_object": rule.record_type,
            "target_column": rule.record_column,
            "enabled": rule.enabled,
            "source_file": f"{rule.file}:{rule.line}",
        }
        for rule in book.rules
    }
    rows = {row.name: row for row in session.scalars(select(BindingRule))}
    for name, row in rows.items():
        if name not in wanted:
            session.delete(row)
    for name, values in wanted.items():
        row = rows.get(name)
        if row is None:
            session.add(BindingRule(name=name, **values))
            continue
        for key, value in values.items():
            if getattr(row, key) != value:
                setattr(row, key, value)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
