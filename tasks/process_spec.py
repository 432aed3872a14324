"""Email processes: the analysts' processes/*.yaml files, checked (SPEC 6).

A process file is an ordered list of steps, each one action from a closed list::

    name: Create lead from an enquiry
    version: 1
    description: A customer asks about our products; make them a lead.
    on:                                  # optional: start by itself for new mail
      email_received:
        subject_matches: "(?i)price|quote|demo"
    steps:
      - id: contact                      # later steps read {{ contact.id }}
        name: Find or create the sender as a contact
        uses: contact.find_or_create
        with: { email: "{{ email.from_address }}", name: "{{ email.from_name }}" }
      - name: Acknowledge
        if: "{{ contact.created }}"
        uses: email.reply
        with: { template: lead-acknowledgement }

The file's name (``create-lead.yaml`` → ``create-lead``) names the process, its
Prefect deployment and the ``process`` parameter. Every problem is reported as
``file:line: step 'id': reason — fix`` and a broken file never keeps the others
from loading (``ProcessBook.problems``). The same models export the format as
JSON Schema (``inboxflow processes schema``) so editors can autocomplete it.
"""

import difflib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jinja2
import yaml
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from models.db import PROJECT_ROOT
from models.records import LINKED_TYPES, RECORD_TYPES
from tasks.analyst_files import FileProblem, display_path, read_yaml
from tasks.errors import ConfigError
from tasks.rules import compile_pattern

DEFAULT_PROCESSES_DIR = PROJECT_ROOT / "processes"
FILE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# What every expression can read besides earlier steps' outputs.
BUILT_IN_NAMES = frozenset({"email", "process"})
RECORD_OBJECT = Literal["Lead", "Case", "Opportunity", "Invoice", "Order", "Contract"]
FINDABLE_OBJECT = Literal[
    "Contact", "Account", "Lead", "Case", "Opportunity", "Invoice", "Order", "Contract"
]
assert set(RECORD_OBJECT.__args__) == set(RECORD_TYPES), "extend RECORD_OBJECT with RECORD_TYPES"

# The sandbox keeps an expression from reaching Python internals; StrictUndefined turns
# a misspelt field into an error instead of a silent blank.
EXPRESSIONS = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


class ProcessError(ConfigError):
    """A process file is missing or broken, or a process cannot run as written."""


# Step inputs, one model per action ---------------------------------------------------------


class Inputs(BaseModel):
    model_config = ConfigDict(extra="forbid")


Text = str | None
Recipients = str | list[str] | None


class ContactInputs(Inputs):
    """Find the contact who has this address, or create one (linked to its account)."""

    email: str = Field(description="Address to look for, e.g. '{{ email.from_address }}'.")
    name: Text = Field(None, description="Name for a new contact (default: part before '@').")
    account: Any = Field(None, description="Account id for a new contact.")


class AccountInputs(Inputs):
    """Find an account by address, domain or name, or create one."""

    name: Text = Field(None, description="Account name (also the name of a new account).")
    domain: Text = Field(None, description="Mail domain, e.g. 'contoso.example'.")
    email: Text = Field(None, description="An address of the account.")


class RecordCreateInputs(Inputs):
    """Create a record and link it to the email."""

    object: RECORD_OBJECT = Field(description="Record type to create.")
    values: dict[str, Any] = Field(
        default_factory=dict,
        description="Column values, e.g. {contact: '{{ contact.id }}', source: Email}.",
    )
    reuse_linked: bool = Field(
        True,
        description="When the email (or its thread) is already linked to a record of this "
        "type, use that one instead of creating another. false: always create.",
    )


class RecordUpdateInputs(Inputs):
    """Change columns of a record."""

    object: RECORD_OBJECT = Field(description="Record type.")
    id: Any = Field(description="Record id, e.g. '{{ lead.id }}'.")
    values: dict[str, Any] = Field(description="Columns to change.")


class RecordFindInputs(Inputs):
    """Find one record whose columns equal the given values."""

    object: FINDABLE_OBJECT = Field(description="Record type.")
    where: dict[str, Any] = Field(description="Column values to match, e.g. {number: Inv-53}.")
    required: bool = Field(False, description="true: fail the run when nothing is found.")


class EmailLinkInputs(Inputs):
    """Link the email to a contact, an account or records (ids)."""

    contact: Any = None
    account: Any = None
    lead: Any = None
    case: Any = None
    opportunity: Any = None
    invoice: Any = None
    order: Any = None
    contract: Any = None


class MarkProcessedInputs(Inputs):
    """Clear the email's "needs processing" flag."""

    thread: bool = Field(False, description="true: every email of its thread too.")


class SendInputs(Inputs):
    """Queue a new email (sent by the outbound-sending flow)."""

    to: Recipients = Field(None, description="Recipients (default: the template's recipient).")
    cc: Recipients = None
    bcc: Recipients = None
    template: Text = Field(None, description="Template name (see `inboxflow templates list`).")
    source: Text = Field(
        None, description="Record filling the template's macros, e.g. 'Case:{{ case.id }}'."
    )
    subject: Text = None
    body: Text = Field(None, description="Plain-text body (when there is no template).")
    mailbox: Text = Field(None, description="Mailbox to send from (default: the email's).")


class ReplyInputs(Inputs):
    """Queue a reply to the email (to its sender, in its thread)."""

    template: Text = Field(None, description="Template name (see `inboxflow templates list`).")
    source: Text = Field(
        None, description="Record filling the template's macros, e.g. 'Case:{{ case.id }}'."
    )
    subject: Text = Field(None, description="Default: 'Re: ' and the email's subject.")
    body: Text = Field(None, description="Plain-text body (when there is no template).")
    cc: Recipients = None
    bcc: Recipients = None


class SetInputs(BaseModel):
    """Name values for later steps: {{ STEP_ID.NAME }}."""

    model_config = ConfigDict(extra="allow")


class StopInputs(Inputs):
    """End the run here (completed, not failed), saying why."""

    reason: str = Field(description="Why the process stops, shown on the run.")


ACTIONS: dict[str, type[BaseModel]] = {
    "contact.find_or_create": ContactInputs,
    "account.find_or_create": AccountInputs,
    "record.create": RecordCreateInputs,
    "record.update": RecordUpdateInputs,
    "record.find": RecordFindInputs,
    "email.link": EmailLinkInputs,
    "email.mark_processed": MarkProcessedInputs,
    "email.send": SendInputs,
    "email.reply": ReplyInputs,
    "set": SetInputs,
    "stop": StopInputs,
}
REQUIRES_ONE_OF = {
    "account.find_or_create": ("name", "domain", "email"),
    "email.link": tuple(EmailLinkInputs.model_fields),
}
REQUIRES_BODY = ("email.send", "email.reply")


# The file ---------------------------------------------------------------------------------


class EmailReceived(BaseModel):
    """Start for every new incoming email that matches all the patterns given."""

    model_config = ConfigDict(extra="forbid")

    mailboxes: list[str] = Field(
        default_factory=list, description="Addresses of the mailboxes to watch (default: all)."
    )
    subject_matches: str | None = Field(None, description="RE2 pattern the subject must match.")
    body_matches: str | None = Field(None, description="RE2 pattern the body must match.")
    from_matches: str | None = Field(None, description="RE2 pattern the sender must match.")
    include_auto_replies: bool = Field(
        False, description="true: also start for auto-replies, bounces and bulk mail."
    )
    max_age: str | None = Field(
        None,
        pattern=r"^[1-9][0-9]*[hdw]$",
        description="Skip mail written longer ago than this when it is stored (12h, 2d, 1w): "
        "a first sync or an import of old mail then starts nothing.",
        examples=["2d"],
    )

    @property
    def max_age_delta(self) -> timedelta | None:
        if self.max_age is None:
            return None
        unit = {"h": "hours", "d": "days", "w": "weeks"}[self.max_age[-1]]
        return timedelta(**{unit: int(self.max_age[:-1])})


class Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email_received: EmailReceived


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str | None = Field(
        None,
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="Machine name; later steps read this step's outputs as {{ ID.field }}.",
    )
    name: str = Field(min_length=1, description="What the step does, shown in the Prefect UI.")
    uses: str = Field(description="The action: " + ", ".join(ACTIONS))
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="Inputs.")
    if_: str | None = Field(
        None, alias="if", description="Condition, e.g. '{{ contact.created }}'."
    )


class ProcessSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, description="Human name of the process.")
    version: int = Field(1, ge=1, description="Raise it when you change the process.")
    description: str = ""
    on: Trigger | None = Field(None, description="Optional automatic start.")
    steps: list[StepSpec] = Field(min_length=1, description="Run in this order.")


STEP_KEYS = frozenset({"id", "name", "uses", "with", "if"})


@dataclass(frozen=True)
class Step:
    """A checked step: its inputs validated against its action."""

    index: int
    id: str | None
    name: str
    uses: str
    inputs: dict[str, Any]
    condition: str | None
    line: int


@dataclass(frozen=True)
class Process:
    """A process file that passed every check."""

    key: str  # the file's name: create-lead
    spec: ProcessSpec
    steps: tuple[Step, ...]
    file: str
    trigger_patterns: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    @property
    def trigger(self) -> EmailReceived | None:
        return self.spec.on.email_received if self.spec.on else None

    def trigger_summary(self) -> str:
        trigger = self.trigger
        if trigger is None:
            return ""
        parts = [f"{column} ~ {pattern.pattern}" for column, pattern in self.trigger_patterns]
        if trigger.mailboxes:
            parts.append("in " + ", ".join(trigger.mailboxes))
        return "new email" + (": " + "; ".join(parts) if parts else "")


@dataclass
class ProcessBook:
    processes: dict[str, Process] = field(default_factory=dict)
    problems: list[FileProblem] = field(default_factory=list)

    @property
    def triggered(self) -> list[Process]:
        return [p for p in self.processes.values() if p.trigger is not None]


def processes_dir(directory: str | Path | None = None) -> Path:
    """The argument, INBOXFLOW_PROCESSES_DIR, or the project's processes/ folder."""
    return Path(directory or os.environ.get("INBOXFLOW_PROCESSES_DIR") or DEFAULT_PROCESSES_DIR)


def process_files(directory: str | Path | None = None) -> list[Path]:
    folder = processes_dir(directory)
    if not folder.is_dir():
        raise ProcessError(
            f"processes folder {folder} does not exist (set INBOXFLOW_PROCESSES_DIR)"
        )
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_processes(directory: str | Path | None = None) -> ProcessBook:
    """Every good process of the folder, and a problem for each broken file."""
    book = ProcessBook()
    for path in process_files(directory):
        process, problems = read_process_file(path)
        book.problems.extend(problems)
        if process is None:
            continue
        if process.key in book.processes:
            other = book.processes[process.key].file
            book.problems.append(
                FileProblem(process.file, 1, f"process {process.key!r} is also {other}")
            )
            continue
        book.processes[process.key] = process
    return book


def load_process(key: str, directory: str | Path | None = None) -> Process:
    """One process by its file name, or ProcessError naming every problem of the file."""
    if not FILE_NAME.match(key):
        raise ProcessError(f"{key!r} is not a process name (see `inboxflow processes list`)")
    folder = processes_dir(directory)
    path = next(
        (folder / f"{key}{ext}" for ext in (".yaml", ".yml") if (folder / f"{key}{ext}").is_file()),
        None,
    )
    if path is None:
        raise ProcessError(
            f"no process {key!r}: there is no {key}.yaml in {display_path(folder)} "
            "(see `inboxflow processes list`)"
        )
    process, problems = read_process_file(path)
    if process is None:
        raise ProcessError("\n".join(str(p) for p in problems))
    return process


def read_process_file(path: Path) -> tuple[Process | None, list[FileProblem]]:
    """The checked process of one file, or None and every problem found in it."""
    loaded = read_yaml(path)
    if isinstance(loaded, FileProblem):
        return None, [loaded]
    shown, root, data = loaded.shown, loaded.root, loaded.data
    checker = _FileChecker(shown, root)
    if not FILE_NAME.match(path.stem):
        checker.add(
            (),
            f"file name {path.name!r} is not a process name: use lower-case letters, digits "
            "and '-' (it names the Prefect deployment), e.g. create-lead.yaml",
        )
    if not isinstance(data, dict):
        checker.add((), "expected a mapping with name, description and steps")
        return None, checker.problems
    # YAML 1.1 reads `on:` as the boolean True; the file means the key "on".
    if True in data and "on" not in data:
        data["on"] = data.pop(True)
    process = checker.check(path.stem, data)
    return process, checker.problems


class _FileChecker:
    """Collects a file's problems with their lines."""

    def __init__(self, file: str, root: yaml.Node | None) -> None:
        self.file = file
        self.root = root
        self.problems: list[FileProblem] = []

    def add(self, loc: tuple[Any, ...], reason: str) -> None:
        self.problems.append(FileProblem(self.file, _line_of(self.root, loc), reason))

    def check(self, key: str, data: dict[str, Any]) -> Process | None:
        steps_data = data.get("steps")
        try:
            spec = ProcessSpec.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                # A step's own problems are reported by _check_step, once.
                if error["loc"][:1] != ("steps",) or len(error["loc"]) == 1:
                    self._pydantic_error(error, (), data)
            spec = None
        # Each step is checked on its own, so a broken step never hides the others' problems.
        steps: list[Step] = []
        known = set(BUILT_IN_NAMES)
        ids_seen: dict[str, int] = {}
        if isinstance(steps_data, list):
            for index, item in enumerate(steps_data):
                step = self._check_step(index, item, known, ids_seen)
                if step is not None:
                    steps.append(step)
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    known.add(item["id"])
        patterns = self._check_trigger(spec)
        if spec is None or self.problems:
            return None
        return Process(key, spec, tuple(steps), self.file, patterns)

    def _check_step(
        self, index: int, item: Any, known: set[str], ids_seen: dict[str, int]
    ) -> Step | None:
        loc: tuple[Any, ...] = ("steps", index)
        if not isinstance(item, dict):
            self.add(loc, f"step {index + 1}: a step is a mapping with name, uses and with")
            return None
        step_id, step_name = item.get("id"), item.get("name")
        if isinstance(step_id, str):
            label = f"step {step_id!r}"
        elif isinstance(step_name, str):
            label = f"step {index + 1} ({step_name!r})"
        else:
            label = f"step {index + 1}"
        problems_before = len(self.problems)
        try:
            spec = StepSpec.model_validate(item)
        except ValidationError as exc:
            for error in exc.errors():
                if error["loc"][:1] == ("uses",) and error["type"] != "missing":
                    continue  # reported below with the list of actions
                self._pydantic_error(error, loc, item, label)
            spec = None
        if isinstance(step_id, str):
            if step_id in BUILT_IN_NAMES:
                self.add(
                    (*loc, "id"),
                    f"{label}: id {step_id!r} is taken by the built-in "
                    f"{step_id!r}; choose another id",
                )
            elif step_id in ids_seen:
                self.add(
                    (*loc, "id"),
                    f"{label}: id already used by step {ids_seen[step_id]}; ids must be unique",
                )
            ids_seen.setdefault(step_id, index + 1)
        uses = item.get("uses")
        action = ACTIONS.get(uses) if isinstance(uses, str) else None
        if uses is not None and action is None:
            hint = _did_you_mean(str(uses), ACTIONS)
            self.add(
                (*loc, "uses"),
                f"{label}: unknown action {uses!r}{hint}; the actions are {', '.join(ACTIONS)}",
            )
        inputs = item.get("with", {})
        # A misspelt `with` would also make every input "missing": report the key only.
        misspelt_with = "with" not in item and any(key not in STEP_KEYS for key in item)
        if action is not None and not misspelt_with:
            self._check_inputs(str(uses), action, inputs, (*loc, "with"), label)
        for path, text in _strings(inputs, (*loc, "with")):
            self._check_expression(text, path, label, known, template=True)
        condition = item.get("if")
        if condition is not None:
            if not isinstance(condition, str | bool):
                self.add(
                    (*loc, "if"),
                    f"{label}: if: write a condition such as '{{{{ contact.created }}}}'",
                )
            elif isinstance(condition, str):
                self._check_expression(condition, (*loc, "if"), label, known, template=False)
        if spec is None or len(self.problems) > problems_before:
            return None
        return Step(
            index=index,
            id=spec.id,
            name=spec.name,
            uses=spec.uses,
            inputs=dict(spec.with_),
            condition=None if spec.if_ is None else str(spec.if_),
            line=_line_of(self.root, loc),
        )

    def _check_inputs(
        self, uses: str, action: type[BaseModel], inputs: Any, loc: tuple[Any, ...], label: str
    ) -> None:
        if not isinstance(inputs, dict):
            self.add(
                loc,
                f"{label}: with: give the inputs as a mapping, e.g. "
                f"with: {{ {', '.join(list(action.model_fields)[:2])}: ... }}",
            )
            return
        try:
            action.model_validate(inputs)
        except ValidationError as exc:
            for error in exc.errors():
                self._pydantic_error(error, loc, inputs, f"{label} ({uses})", inputs_of=action)
        one_of = REQUIRES_ONE_OF.get(uses)
        if one_of and not any(inputs.get(name) not in (None, "") for name in one_of):
            self.add(loc, f"{label}: {uses} needs at least one of the inputs {', '.join(one_of)}")
        if uses in REQUIRES_BODY and not (inputs.get("template") or inputs.get("body")):
            self.add(
                loc,
                f"{label}: {uses} needs the input 'template' (a template name) or "
                "'body' (the text)",
            )
        if uses.startswith("record.") and isinstance(inputs.get("object"), str):
            columns_key = "where" if uses == "record.find" else "values"
            columns = inputs.get(columns_key)
            if isinstance(columns, dict):
                for column in columns:
                    reason = unknown_column(inputs["object"], str(column))
                    if reason:
                        self.add((*loc, columns_key, column), f"{label}: {columns_key}: {reason}")

    def _check_trigger(self, spec: ProcessSpec | None) -> tuple[tuple[str, Any], ...]:
        if spec is None or spec.on is None:
            return ()
        trigger = spec.on.email_received
        compiled = []
        for column in ("subject", "body", "from"):
            pattern = getattr(trigger, f"{column}_matches")
            if pattern is None:
                continue
            try:
                compiled.append((column, compile_pattern(pattern)))
            except ConfigError as exc:
                self.add(("on", "email_received", f"{column}_matches"), f"on: {exc}")
        return tuple(compiled)

    def _check_expression(
        self, text: str, loc: tuple[Any, ...], label: str, known: set[str], *, template: bool
    ) -> None:
        where = ".".join(str(part) for part in loc[2:])
        try:
            names = referenced_names(text, template=template)
        except jinja2.TemplateSyntaxError as exc:
            self.add(loc, f"{label}: {where}: expression {text!r}: {exc.message}")
            return
        for name in sorted(names - known):
            earlier = sorted(known - BUILT_IN_NAMES)
            self.add(
                loc,
                f"{label}: {where}: {text!r} reads {name!r}, which is neither 'email' nor the "
                f"id of an earlier step"
                + (f" (earlier steps: {', '.join(earlier)})" if earlier else "")
                + _did_you_mean(name, [*earlier, *BUILT_IN_NAMES]),
            )

    def _pydantic_error(
        self,
        error: Any,
        base: tuple[Any, ...],
        data: dict[str, Any],
        label: str | None = None,
        inputs_of: type[BaseModel] | None = None,
    ) -> None:
        loc = tuple(
            "with" if part == "with_" else "if" if part == "if_" else part for part in error["loc"]
        )
        prefix = f"{label}: " if label else ""
        key = str(loc[-1]) if loc else ""
        model = inputs_of or (StepSpec if label else ProcessSpec)
        where = "with: " if inputs_of else ""
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            reason = (
                f"{where}unknown key {key!r}{_did_you_mean(key, allowed)}; "
                f"allowed: {', '.join(allowed)}"
            )
        elif error["type"] == "missing":
            field_info = _field(model, loc)
            hint = f" ({field_info.description})" if field_info and field_info.description else ""
            reason = (
                f"{where}missing input {key!r}{hint}"
                if inputs_of
                else (f"missing key {key!r}{hint}")
            )
        else:
            shown = ".".join(str(p) for p in loc)
            reason = f"{where}{shown}: {error['msg']}"
        self.add((*base, *loc), prefix + reason)


def unknown_column(record_type: str, column: str) -> str | None:
    """Why a record type has no such column (None when it has it)."""
    columns = record_columns(record_type)
    if column in columns or f"{column}_id" in columns:
        return None
    choices = sorted({c.removesuffix("_id") for c in columns} - {"id", "created_at"})
    return f"{record_type} has no column {column!r}{_did_you_mean(column, choices)}; " + (
        f"its columns: {', '.join(choices)}"
    )


@cache
def record_columns(record_type: str) -> frozenset[str]:
    table = LINKED_TYPES[record_type].__table__  # type: ignore[attr-defined]
    return frozenset(column.name for column in table.columns)


@cache
def referenced_names(text: str, *, template: bool) -> frozenset[str]:
    """The top-level names an expression reads (raises TemplateSyntaxError)."""
    source = text if template else condition_template(text)
    return frozenset(meta.find_undeclared_variables(EXPRESSIONS.parse(source)))


def condition_template(text: str) -> str:
    """A condition may be written with or without {{ }}."""
    stripped = text.strip()
    return stripped if stripped.startswith("{{") else "{{ " + stripped + " }}"


def _strings(value: Any, loc: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every string in the inputs that holds an expression, with its location."""
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    target: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        info = getattr(target, "model_fields", {}).get("with_" if part == "with" else part)
        if info is None:
            break
        target = _model_of(info.annotation)
    fields = getattr(target, "model_fields", {})
    return [info.alias or name for name, info in fields.items()]


def _field(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    target: Any = model
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        info = getattr(target, "model_fields", {}).get(part)
        if info is None:
            return None
        target = _model_of(info.annotation)
    return info


def _model_of(annotation: Any) -> Any:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        for inner in getattr(candidate, "__args__", ()):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """The line of the deepest node of ``loc`` that exists in the file (1-based)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if pair is None and part == "on":
                pair = next(((k, v) for k, v in node.value if k.value in ("on", "true")), None)
            if pair is None:
                return line
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


# JSON Schema for editors --------------------------------------------------------------------


def json_schema() -> str:
    """The process file format as JSON Schema: one step shape per action, told apart by `uses`."""
    variants = []
    for action, inputs in ACTIONS.items():
        variants.append(
            create_model(
                "Step_" + action.replace(".", "_"),
                __config__=ConfigDict(extra="forbid", title=f"step using {action}"),
                id=(str | None, StepSpec.model_fields["id"]),
                name=(str, StepSpec.model_fields["name"]),
                uses=(Literal[action], Field(description=inputs.__doc__)),  # type: ignore[valid-type]
                with_=(inputs, Field(default_factory=dict, alias="with")),
                if_=(str | bool | None, Field(None, alias="if")),
            )
        )
    step_union: Any = variants[0]
    for variant in variants[1:]:
        step_union = step_union | variant
    file_model = create_model(
        "ProcessFile",
        __config__=ConfigDict(extra="forbid", title="inboxflow email process"),
        name=(str, ProcessSpec.model_fields["name"]),
        version=(int, ProcessSpec.model_fields["version"]),
        description=(str, ""),
        on=(Trigger | None, ProcessSpec.model_fields["on"]),
        steps=(list[step_union], ProcessSpec.model_fields["steps"]),  # type: ignore[valid-type]
    )
    schema = file_model.model_json_schema(by_alias=True)
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
