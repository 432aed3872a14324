"""Credential references: where a mailbox's password or token is kept.

The database stores only a reference, never the secret:
``env:VAR`` reads an environment variable of the process that syncs;
``secret:NAME`` reads a Prefect Secret block (encrypted on the server).
"""

import os
import ssl
from dataclasses import dataclass, field

from tasks.errors import CredentialError


@dataclass(frozen=True)
class ServerLogin:
    """Where a mailbox's server is and how to log in to it (IMAP or SMTP)."""

    address: str
    host: str
    port: int
    security: str  # ssl | starttls | none
    login: str
    secret: str = field(repr=False)  # kept out of logs and tracebacks
    auth: str = "basic"  # basic | oauth2 (the secret is then an access token)
    tls_insecure: bool = False
    timeout: float = 60.0

    def tls_context(self) -> ssl.SSLContext | None:
        """How to check the server's certificate; None for a plaintext connection,
        which needs none (loading the CA bundle costs ~50 ms)."""
        if self.security == "none":
            return None
        context = ssl.create_default_context()
        if self.tls_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


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
