"""Tasks that outlive the process: a pool's durable journal in one SQLite file.

``ThreadedPool(..., journal="tasks.db")`` (and ``ProcessPool``) writes every task before
``submit`` returns and records its attempts and outcome; a pool opened on a journal that
holds unfinished tasks runs them again, and ``submit_with(fn, args, key=K)`` with a key
the journal holds returns that task's future instead of running it twice. The command
line: ``python -m real.journal inspect|retry-failed|compact FILE``.
"""

from real.journal.codec import NotJournalableError
from real.journal.pool_journal import Journal, JournaledTaskError
from real.journal.store import SCHEMA_VERSION, JournalError

__all__ = ["SCHEMA_VERSION", "Journal", "JournalError", "JournaledTaskError", "NotJournalableError"]
