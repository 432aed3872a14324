"""The outbox's hand-over journal (tasks/handover.py): what a crashed run leaves is read back."""

import uuid

from tasks.handover import (
    Delivered,
    HandOverJournal,
    boot_id,
    clear_journal,
    journal_path,
    read_journal,
)

REPLY = Delivered(uuid.uuid4(), "250 2.0.0 Ok: queued as 1A\n", {"x@y.example": "550"})


def killed_run(tmp_path):
    """The journal of a run killed while handing over its second email: its path and
    the emails taken, being handed over, announced, and never announced."""
    path = journal_path(tmp_path, uuid.uuid4())
    taken, handed, announced, untouched = (uuid.uuid4() for _ in range(4))
    with HandOverJournal(path) as journal:
        journal.claimed([taken, handed, announced, untouched])
        journal.may_hand_over([taken, handed, announced])
        journal.handing_over(taken)
        journal.delivered(Delivered(taken, REPLY.reply, REPLY.refused))
        journal.handing_over(handed)
    return path, taken, handed, announced, untouched


def test_a_crashed_runs_journal_tells_each_emails_fate(tmp_path):
    path, taken, handed, announced, untouched = killed_run(tmp_path)
    with path.open("a") as tail:
        tail.write(f'delivered {handed} ["250 cut sh')  # the write a SIGKILL cut short

    view = read_journal(path)

    assert boot_id() is not None and view.complete  # the same boot: every line counts
    assert view.delivered == {taken: Delivered(taken, REPLY.reply, REPLY.refused)}
    assert handed in view.handed_over and handed not in view.delivered
    assert not view.never_handed_over(handed)
    assert view.never_handed_over(announced)
    assert view.never_handed_over(untouched)
    # Not claimed by a run that kept a journal (an older version): never "not handed over".
    assert not view.never_handed_over(uuid.uuid4())
    clear_journal(path)
    assert read_journal(path).claimed == set()


def test_after_a_restart_only_the_flushed_lines_count(tmp_path):
    # A power cut loses what was written but not flushed: a missing hand-over line then
    # proves nothing for an email of an announced window, which must be looked up.
    path, taken, handed, announced, untouched = killed_run(tmp_path)

    view = read_journal(path, boot="another-boot")

    assert not view.complete
    assert view.delivered[taken].reply == REPLY.reply
    assert not view.never_handed_over(handed)
    assert not view.never_handed_over(announced)
    assert view.never_handed_over(untouched)  # claimed outside every window: never sent


def test_a_journal_of_an_older_version_never_lets_a_handed_over_email_go_again(tmp_path):
    # Written before boot lines and windows existed: each hand-over line was flushed.
    path = journal_path(tmp_path, uuid.uuid4())
    handed, untouched = uuid.uuid4(), uuid.uuid4()
    path.parent.mkdir(parents=True)
    path.write_text(f"claimed {handed} {untouched}\nhanding-over {handed}\n")

    view = read_journal(path)

    assert not view.complete
    assert not view.never_handed_over(handed)
    assert view.never_handed_over(untouched)
