"""crm/sqlite: the threads of a process queue on a lock before BEGIN IMMEDIATE.

The test database is in memory (left without the lock), so these tests open a file
database with the project's settings, as gunicorn's threads would.
"""

import fcntl
import os
import threading
import time

import pytest
from django.db import OperationalError, connection, connections, transaction

from crm.sqlite.base import DatabaseWrapper, writer_lock

pytestmark = [
    pytest.mark.django_db,  # lets the test open connections; the tables are its own
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the writer lock is SQLite's"),
]

ALIAS = "writer_lock_check"


@pytest.fixture
def database(tmp_path):
    """A file database with one table; opens a connection per thread like Django does."""
    settings_dict = {**connection.settings_dict, "NAME": str(tmp_path / "lock.sqlite3")}
    settings_dict["OPTIONS"] = {**settings_dict["OPTIONS"], "timeout": 5}
    opened = []

    def open_connection(**options):
        wrapper = DatabaseWrapper(
            {**settings_dict, "OPTIONS": {**settings_dict["OPTIONS"], **options}}, alias=ALIAS
        )
        connections[ALIAS] = wrapper  # this thread's connection for transaction.atomic
        if threading.current_thread() is threading.main_thread():
            opened.append(wrapper)  # the tests' own threads close theirs
        return wrapper

    first = open_connection()
    with first.cursor() as cursor:
        cursor.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
    yield open_connection, writer_lock(settings_dict["NAME"])
    for wrapper in opened:
        wrapper.close()
    del connections[ALIAS]


def names(wrapper) -> list[str]:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT name FROM item ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def test_the_lock_is_held_inside_a_transaction_and_free_after_commit(database):
    open_connection, lock = database
    wrapper = open_connection()
    wrapper.ensure_connection()
    assert wrapper.transaction_mode == "IMMEDIATE"
    with transaction.atomic(using=ALIAS):
        assert lock.locked()
        with wrapper.cursor() as cursor:
            cursor.execute("INSERT INTO item (name) VALUES ('kept')")
        with transaction.atomic(using=ALIAS):  # a savepoint takes nothing more
            assert lock.locked()
        assert lock.locked()
    assert not lock.locked()
    assert names(wrapper) == ["kept"]


def test_reads_and_writes_outside_a_transaction_never_take_it(database):
    open_connection, lock = database
    wrapper = open_connection()
    with wrapper.cursor() as cursor:
        cursor.execute("INSERT INTO item (name) VALUES ('autocommit')")
        assert not lock.locked()
        cursor.execute("SELECT COUNT(*) FROM item")
        assert cursor.fetchone() == (1,)
    assert not lock.locked()


def test_an_exception_inside_a_transaction_rolls_back_and_releases_it(database):
    open_connection, lock = database
    wrapper = open_connection()
    with pytest.raises(ValueError), transaction.atomic(using=ALIAS):
        with wrapper.cursor() as cursor:
            cursor.execute("INSERT INTO item (name) VALUES ('rolled back')")
        raise ValueError("boom")
    assert not lock.locked()
    assert names(wrapper) == []
    with transaction.atomic(using=ALIAS):  # and the next transaction gets it at once
        assert lock.locked()
    assert not lock.locked()


def test_closing_the_connection_inside_a_transaction_releases_it(database):
    open_connection, lock = database
    wrapper = open_connection()
    with transaction.atomic(using=ALIAS):
        with wrapper.cursor() as cursor:
            cursor.execute("INSERT INTO item (name) VALUES ('lost with the connection')")
        wrapper.close()
        assert not lock.locked()
    assert not lock.locked()
    assert names(open_connection()) == []


def test_a_second_thread_waits_for_the_commit_then_writes(database):
    open_connection, lock = database
    wrapper = open_connection()
    started, done = threading.Event(), {}

    def second_writer():
        other = open_connection()
        started.set()
        try:
            with transaction.atomic(using=ALIAS):
                done["entered"] = time.monotonic()
                with other.cursor() as cursor:
                    cursor.execute("INSERT INTO item (name) VALUES ('second')")
        except Exception as error:  # reported by the assertion below
            done["error"] = error
        finally:
            other.close()

    with transaction.atomic(using=ALIAS):
        with wrapper.cursor() as cursor:
            cursor.execute("INSERT INTO item (name) VALUES ('first')")
        thread = threading.Thread(target=second_writer)
        thread.start()
        started.wait(5)
        time.sleep(0.2)  # the other thread is now blocked on the lock
        assert "entered" not in done
        committed = time.monotonic()
    thread.join(10)
    assert "error" not in done, done.get("error")
    assert done["entered"] >= committed
    assert names(wrapper) == ["first", "second"]
    assert not lock.locked()


def test_a_writer_that_waits_longer_than_the_timeout_gets_database_is_locked(database):
    open_connection, lock = database
    wrapper = open_connection()
    outcome = {}

    def impatient_writer():
        other = open_connection(timeout=0.1)
        try:
            with transaction.atomic(using=ALIAS):
                outcome["entered"] = True
        except OperationalError as error:
            outcome["error"] = str(error)
        finally:
            other.close()

    with transaction.atomic(using=ALIAS):
        thread = threading.Thread(target=impatient_writer)
        thread.start()
        thread.join(10)
        assert lock.locked()  # still this thread's
    assert outcome == {"error": "database is locked (waited for this process's writer)"}
    assert not lock.locked()
    with transaction.atomic(using=ALIAS), wrapper.cursor() as cursor:
        cursor.execute("INSERT INTO item (name) VALUES ('after')")
    assert names(wrapper) == ["after"]


def _other_process_could_lock(name: str) -> bool:
    """What another process would find: a second open of the lock file has its own lock."""
    descriptor = os.open(f"{name}-writer", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return True
    finally:
        os.close(descriptor)


def test_other_processes_writers_wait_on_the_lock_file_until_commit(database):
    open_connection, _ = database
    wrapper = open_connection()
    name = wrapper.settings_dict["NAME"]
    assert _other_process_could_lock(name)
    with transaction.atomic(using=ALIAS):
        with wrapper.cursor() as cursor:
            cursor.execute("INSERT INTO item (name) VALUES ('kept')")
        assert not _other_process_could_lock(name)
    assert _other_process_could_lock(name)


def test_a_rolled_back_transaction_frees_the_lock_file(database):
    open_connection, _ = database
    wrapper = open_connection()
    name = wrapper.settings_dict["NAME"]
    with pytest.raises(RuntimeError), transaction.atomic(using=ALIAS):
        with wrapper.cursor() as cursor:
            cursor.execute("INSERT INTO item (name) VALUES ('gone')")
        raise RuntimeError("refused")
    assert _other_process_could_lock(name)
    assert names(wrapper) == []


def test_a_writer_behind_another_process_for_longer_than_the_timeout_is_refused(database):
    open_connection, lock = database
    wrapper = open_connection(timeout=0.2)
    name = wrapper.settings_dict["NAME"]
    other_process = os.open(f"{name}-writer", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(other_process, fcntl.LOCK_EX)  # another process's writer, mid-transaction
    try:
        with (
            pytest.raises(OperationalError, match="another process's writer"),
            transaction.atomic(using=ALIAS),
            wrapper.cursor() as cursor,
        ):
            cursor.execute("INSERT INTO item (name) VALUES ('never')")
        assert not lock.locked()  # this process's next writer is not stuck behind it
    finally:
        fcntl.flock(other_process, fcntl.LOCK_UN)
        os.close(other_process)
    with transaction.atomic(using=ALIAS), wrapper.cursor() as cursor:
        cursor.execute("INSERT INTO item (name) VALUES ('after')")
    assert names(wrapper) == ["after"]


def test_a_writer_follows_another_process_that_commits_within_the_timeout(database):
    open_connection, _ = database
    wrapper = open_connection()
    name = wrapper.settings_dict["NAME"]
    other_process = os.open(f"{name}-writer", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(other_process, fcntl.LOCK_EX)
    releaser = threading.Timer(0.2, fcntl.flock, (other_process, fcntl.LOCK_UN))
    releaser.start()
    try:
        with transaction.atomic(using=ALIAS), wrapper.cursor() as cursor:
            cursor.execute("INSERT INTO item (name) VALUES ('waited')")
    finally:
        releaser.join()
        os.close(other_process)
    assert names(wrapper) == ["waited"]
