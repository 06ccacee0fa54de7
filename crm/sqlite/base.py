"""SQLite whose writers queue in Python instead of sleeping in SQLite's busy handler.

Transactions start IMMEDIATE (crm/settings.py): BEGIN takes SQLite's one write lock.
A thread that finds it taken gets SQLITE_BUSY, and SQLite's busy handler sleeps in growing
steps (1, 2, 5, ... up to 100 ms) before it tries again, so under load most writers sleep
long after the lock was released. Here the threads of one process take a threading.Lock
(one per database file) before BEGIN and give it back at COMMIT, ROLLBACK or close: the
next writer wakes as soon as the previous one has finished. Writers of other processes
would still meet the busy handler, so the lock's holder also takes an exclusive flock on a
file beside the database (`<name>-writer`), which the kernel frees if its process dies.
Only one thread of a process at a time waits for it (the others queue on the
threading.Lock), trying again every fraction of a millisecond, so it follows the
previous writer closely, and giving up with SQLite's own error after the same timeout.
Writes made outside a transaction (autocommit) take neither and meet the busy handler
as before.
In-memory databases (the tests') are left as they are.

Its cursors also remember the placeholder conversion of each SQL text (see
`QmarkCursor`).
"""

import fcntl
import os
import threading
import time

from django.db import OperationalError
from django.db.backends.sqlite3 import base

LockType = type(threading.Lock())  # threading.Lock is a factory, not a type
_registry_lock = threading.Lock()
_writer_locks: dict[str, LockType] = {}


# Per process: a descriptor inherited through fork() would share its lock with the parent.
_lock_files: dict[tuple[int, str], int] = {}


def writer_lock(name: str) -> LockType:
    """The one lock of the database file `name` in this process."""
    with _registry_lock:
        return _writer_locks.setdefault(str(name), threading.Lock())


def _lock_file(name: str) -> int:
    """This process's descriptor of the database's lock file, opened once."""
    key = (os.getpid(), name)
    with _registry_lock:
        if key not in _lock_files:
            _lock_files[key] = os.open(f"{name}-writer", os.O_RDWR | os.O_CREAT, 0o600)
        return _lock_files[key]


_RETRY_PAUSE = 0.0001  # seconds between two tries of another process's flock


def _timeout(options: dict) -> float:
    return options.get("timeout", 5)


def _flock_within(name: str, options: dict) -> None:
    """Take the database's flock, waiting at most as long as SQLite would.

    A blocking flock has no timeout, and a process that held it for ever (a shell left
    in a transaction) would hang every writer instead of failing them as SQLite does.
    So it is tried every tenth of a millisecond: a drag holds the lock for about one,
    and with pauses growing to 2 ms the lock stood free for a millisecond at most
    hand-overs between the two gunicorn workers (a quarter fewer drags per second).
    One thread per process polls (the others wait on the threading.Lock), a few
    microseconds of CPU per try.
    """
    descriptor = _lock_file(name)
    deadline = time.monotonic() + _timeout(options)
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError as busy:
            if time.monotonic() >= deadline:
                message = "database is locked (waited for another process's writer)"
                raise OperationalError(message) from busy
            time.sleep(_RETRY_PAUSE)


# SQL text in Django's "%s" style -> the same in SQLite's "?" style.
_qmark_sql: dict[str, str] = {}
_QMARK_SQL_MAX = 1024


class QmarkCursor(base.SQLiteCursorWrapper):
    """Django's SQLite cursor, converting each SQL text's placeholders once per process.

    Django rewrites "%s" into "?" with a regular expression on every execute, which
    costs about 12 ns per character: 76 µs for the drag's compiled read (6.5 KB),
    more than SQLite takes to run it. The texts the app runs repeat (compiled reads,
    the write statements, the ORM's own), so the result is kept, keyed by the text.
    """

    def convert_query(self, query, *, param_names=None):
        if param_names is not None:  # "%(name)s" style: rare, and cheap to convert
            return super().convert_query(query, param_names=param_names)
        converted = _qmark_sql.get(query)
        if converted is None:
            converted = super().convert_query(query)
            if len(_qmark_sql) >= _QMARK_SQL_MAX:
                _qmark_sql.clear()  # texts built with literal values: start again
            _qmark_sql[query] = converted
        return converted


class DatabaseWrapper(base.DatabaseWrapper):
    holds_writer_lock = False

    def create_cursor(self, name=None):
        return self.connection.cursor(factory=QmarkCursor)

    def _writer_lock(self) -> LockType | None:
        if self.is_in_memory_db():
            return None
        return writer_lock(self.settings_dict["NAME"])

    def _start_transaction_under_autocommit(self):
        lock = self._writer_lock()
        if lock is None:
            return super()._start_transaction_under_autocommit()
        # As long as SQLite itself would wait (OPTIONS "timeout"), then the same error.
        if not lock.acquire(timeout=_timeout(self.settings_dict["OPTIONS"])):
            raise OperationalError("database is locked (waited for this process's writer)")
        try:
            _flock_within(self.settings_dict["NAME"], self.settings_dict["OPTIONS"])
        except BaseException:
            lock.release()
            raise
        self.holds_writer_lock = True
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_writer_lock()
            raise

    def _release_writer_lock(self) -> None:
        if self.holds_writer_lock:
            self.holds_writer_lock = False
            try:
                fcntl.flock(_lock_file(self.settings_dict["NAME"]), fcntl.LOCK_UN)
            finally:
                self._writer_lock().release()

    def _release_when_ended(self) -> None:
        # A failed COMMIT leaves the transaction open: the ROLLBACK that follows frees it.
        if self.connection is None or not self.connection.in_transaction:
            self._release_writer_lock()

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._release_when_ended()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_when_ended()

    def _close(self):
        try:
            return super()._close()
        finally:  # closing ends the transaction, whatever happened
            self._release_writer_lock()
