"""``python -m real.journal inspect|retry-failed|compact FILE``: a journal by hand.

* ``inspect``: the tasks by state, and the last failures with their errors.
* ``retry-failed``: failed tasks become pending with no attempts; the next pool opened on
  the journal runs them.
* ``compact``: remove the done tasks and give their space back (failed ones stay).

Bad input (a missing file, a file that is not a journal) gives one line on stderr and
exit code 2; the file is never created or changed then.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from real.journal.store import STATES, JournalError, Store

PROG = "python -m real.journal"
#: Failures ``inspect`` shows.
SHOWN_FAILURES = 10


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit code."""
    parser = _Parser(prog=PROG, description="Look after a poolbench task journal.")
    parser.add_argument("command", choices=("inspect", "retry-failed", "compact"))
    parser.add_argument("file", type=Path, help="the journal (an SQLite file)")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        parser.error(f"journal {args.file} does not exist")
    if args.file.stat().st_size == 0:  # SQLite would take it for a new database
        parser.error(f"journal {args.file} is empty: not a poolbench journal")
    try:
        store = Store(args.file, "json")
    except JournalError as error:
        parser.error(str(error))
    try:
        if args.command == "inspect":
            _inspect(store)
        elif args.command == "retry-failed":
            changed = store.execute(
                "UPDATE tasks SET state='pending', attempts=0, error=NULL, ended=NULL"
                " WHERE state='failed'"
            )
            print(f"{changed} failed tasks are pending again in {args.file}")
        else:
            removed = store.execute("DELETE FROM tasks WHERE state='done'")
            store.vacuum()
            print(f"removed {removed} done tasks from {args.file}")
    finally:
        store.close()
    return 0


def _inspect(store: Store) -> None:
    frame = store.frame()
    print(f"{store.path}: {len(frame)} tasks (encoding {store.encoding})")
    for state in STATES:
        print(f"  {state:8} {int((frame['state'] == state).sum())}")
    failed = frame[frame["state"] == "failed"].tail(SHOWN_FAILURES)
    for row in failed.itertuples():
        label = row.key if isinstance(row.key, str) else f"#{row.id}"
        print(f"  failed {label} ({row.fn}, {row.attempts} attempts): {row.error}")


if __name__ == "__main__":
    sys.exit(main())
