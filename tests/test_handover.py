"""The outbox's hand-over journal (tasks/handover.py): what a crashed run leaves is read back."""

import uuid

from tasks.handover import Delivered, HandOverJournal, clear_journal, journal_path, read_journal


def test_a_crashed_runs_journal_tells_each_emails_fate(tmp_path):
    path = journal_path(tmp_path, uuid.uuid4())
    taken, handed, untouched = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with HandOverJournal(path) as journal:
        journal.claimed([taken, handed, untouched])
        journal.handing_over(taken).result()
        journal.delivered(Delivered(taken, "250 2.0.0 Ok: queued as 1A\n", {"x@y.example": "550"}))
        journal.handing_over(handed).result()
    with path.open("a") as tail:
        tail.write(f'delivered {handed} ["250 cut sh')  # the write a SIGKILL cut short

    view = read_journal(path)

    assert view.delivered == {
        taken: Delivered(taken, "250 2.0.0 Ok: queued as 1A\n", {"x@y.example": "550"})
    }
    assert handed in view.handed_over and handed not in view.delivered
    assert view.never_handed_over(untouched)
    assert not view.never_handed_over(handed)
    # Not claimed by a run that kept a journal (an older version): never "not handed over".
    assert not view.never_handed_over(uuid.uuid4())
    clear_journal(path)
    assert read_journal(path).claimed == set()
