"""Credential references: where a mailbox's password or token is kept.

The database stores only a reference, never the secret:
``env:VAR`` reads an environment variable of the process that syncs;
``secret:NAME`` reads a Prefect Secret block (encrypted on the server).
"""

import os

from tasks.errors import CredentialError


def env_reference(variable: str) -> str:
    return f"env:{variable}"


def resolve_credential(reference: str, owner: str) -> str:
    """The secret a reference points to; ``owner`` names the mailbox in errors."""
    kind, _, name = reference.partition(":")
    if kind == "env" and name:
        value = os.environ.get(name)
        if value is None:
            raise CredentialError(
                f"mailbox {owner}: environment variable {name} is not set "
                f"(export {name}=... before running)"
            )
        return value
    if kind == "secret" and name:
        from prefect.blocks.system import Secret

        try:
            return Secret.load(name).get()
        except (ValueError, RuntimeError) as exc:
            raise CredentialError(f"mailbox {owner}: Prefect Secret block {name!r}: {exc}") from exc
    raise CredentialError(
        f"mailbox {owner}: credential reference {reference!r} is neither env:VAR nor secret:NAME"
    )
