"""The `email-import` flow: .eml files, mbox files and Maildir folders, through the sync's path."""

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.states import Completed, Failed, State
from prefect.utilities.annotations import quote

from flows.initial_processing import process_after_storing
from models import init_db, session_scope
from tasks.batches import batched
from tasks.errors import InboxflowError
from tasks.importing import read_sources, store_imported_batch
from tasks.locking import mailbox_lock
from tasks.mailboxes import mailbox_ref
from tasks.parsing import ParserPool
from tasks.sync import file_store, max_file_size

BATCH_SIZE = 500


@flow(name="email-import")
def email_import(path: str, mailbox: str, folder: str = "INBOX") -> State:
    """Import every message under path into the mailbox; what was stored before is skipped."""
    try:
        totals = import_into_mailbox(Path(path), mailbox, folder)
        totals.update(process_after_storing(mailbox))
    except InboxflowError as exc:
        get_run_logger().error(str(exc))
        return Failed(message=str(exc))
    get_run_logger().info("imported into %s: %s", mailbox, totals)
    return Completed(message=f"{totals['stored']} emails stored", data=totals)


def import_into_mailbox(path: Path, mailbox: str, folder: str) -> dict[str, int]:
    init_db()
    with session_scope() as session:
        target = mailbox_ref(session, mailbox)
    totals = {"read": 0, "stored": 0, "duplicates": 0, "problems": 0}
    with (
        mailbox_lock(target.id, target.address),
        ParserPool(file_store(), max_file_size()) as parser,
    ):
        for batch in batched(read_sources(path, folder), BATCH_SIZE):
            parsed = parser.submit([source.raw for source in batch])()
            stored = store_imported_batch(target, [s.folder for s in batch], quote(parsed))
            totals["read"] += len(batch)
            totals["stored"] += len(stored.stored_ids)
            totals["duplicates"] += stored.duplicates
            totals["problems"] += stored.problems
    return totals
