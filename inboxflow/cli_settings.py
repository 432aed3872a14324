"""The CLI's `inboxflow settings list|set`. Registered by ``register(app)`` in inboxflow/cli.py."""

from typing import Annotated

import typer

from inboxflow.cli import JsonOption, _session, out, print_rows
from tasks.settings import DEPLOYED, list_settings, set_setting

settings_app = typer.Typer(
    help="System settings: MailboxSyncInterval, EmailProcessTag, MaxFileSize."
)


def register(app: typer.Typer) -> None:
    app.add_typer(settings_app, name="settings")


@settings_app.command("list")
def settings_list(as_json: JsonOption = False) -> None:
    """Every setting, its value and its default."""
    with _session() as session:
        rows = list_settings(session)
    print_rows(rows, as_json, ["key", "value", "default"], "settings")


@settings_app.command("set")
def settings_set(
    key: Annotated[
        str, typer.Argument(help="MailboxSyncInterval, EmailProcessTag or MaxFileSize.")
    ],
    value: Annotated[str, typer.Argument(help="Minutes, text, or bytes.")],
) -> None:
    """Change a setting."""
    with _session() as session:
        key, stored = set_setting(session, key, value)
    out.print(f"{key} = {stored}", highlight=False)
    if key in DEPLOYED:
        out.print("prefect.yaml carries it: run `inboxflow processes deploy` to apply it")
