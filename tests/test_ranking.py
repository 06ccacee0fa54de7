"""Fractional-index keys (opportunities/ranking.py), without the database."""

import bisect
import itertools
import random

import pytest

from opportunities import ranking

INSERTS = 10_000


class Column:
    """A column of keys kept in order, the way the board orders cards."""

    def __init__(self, count: int = 2):
        self.keys = list(ranking.spaced_keys(count))
        self.newest: list[str] = list(self.keys)
        self.longest = 0

    def insert(self, before: str | None, after: str | None) -> str:
        key = ranking.key_between(before, after)
        assert before is None or before < key, (before, key)
        assert after is None or key < after, (key, after)
        index = bisect.bisect_left(self.keys, key)
        assert index == len(self.keys) or self.keys[index] != key, "duplicate key"
        self.keys.insert(index, key)
        self.newest.append(key)
        self.longest = max(self.longest, len(key))
        return key

    def below(self, key: str) -> str | None:
        index = self.keys.index(key) + 1
        return self.keys[index] if index < len(self.keys) else None

    def above(self, key: str) -> str | None:
        index = self.keys.index(key)
        return self.keys[index - 1] if index else None


def drop_after_fixed(column: Column, step: int) -> None:
    top = column.keys[0]
    column.insert(top, column.below(top))


def drop_before_fixed(column: Column, step: int) -> None:
    bottom = column.keys[-1]
    column.insert(column.above(bottom), bottom)


def drop_alternating(column: Column, step: int) -> None:
    """Right under the first card, then right above the last one, and so on."""
    if step % 2:
        drop_before_fixed(column, step)
    else:
        drop_after_fixed(column, step)


def drop_at_top(column: Column, step: int) -> None:
    column.insert(None, column.keys[0])


def drop_at_bottom(column: Column, step: int) -> None:
    column.insert(column.keys[-1], None)


@pytest.mark.parametrize(
    ("pattern", "longest_key"),
    [
        (drop_after_fixed, 5),
        (drop_before_fixed, 5),
        (drop_alternating, 5),
        (drop_at_top, 4),
        (drop_at_bottom, 3),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_ten_thousand_drops_into_one_gap_keep_order_and_short_keys(pattern, longest_key):
    column = Column()
    for step in range(INSERTS):
        pattern(column, step)
    assert column.keys == sorted(column.keys)
    assert len(set(column.keys)) == INSERTS + 2
    # Measured, and stated here so a regression shows: far below MAX_KEY_LENGTH (48) and
    # the 128-character column.
    assert column.longest == longest_key


def test_ten_thousand_drops_at_random_places_keep_order_and_short_keys():
    column, rng = Column(), random.Random(20261124)
    for _ in range(INSERTS):
        index = rng.randrange(len(column.keys) + 1)
        before = column.keys[index - 1] if index else None
        after = column.keys[index] if index < len(column.keys) else None
        column.insert(before, after)
    assert column.keys == sorted(column.keys)
    assert column.longest == 22


def test_zigzag_between_the_two_newest_cards_halves_the_gap():
    """The adversarial pattern: every drop lands between the two previous drops.

    No key scheme can beat halving here; hugging would lose about two digits per drop.
    Past MAX_KEY_LENGTH the move service re-spaces the column (see test_moves.py).
    """
    column = Column()
    drops = 0
    while True:
        before, after = sorted(column.newest[-2:])
        if len(ranking.key_between(before, after)) > ranking.MAX_KEY_LENGTH:
            break
        column.insert(before, after)
        drops += 1
    assert drops == 238


def test_key_between_neighbours_lies_strictly_between():
    key = ranking.key_between("a", "b")
    assert "a" < key < "b"


def test_key_between_adjacent_keys_grows_by_one_digit():
    key = ranking.key_between("a1", "a2")
    assert "a1" < key < "a2"
    assert len(key) == 3


def test_key_at_the_top_is_below_the_first_key():
    key = ranking.key_between(None, "1")
    assert key < "1"
    ranking.validate_key(key)


def test_key_at_the_bottom_is_above_the_last_key():
    key = ranking.key_between("z", None)
    assert key > "z"
    ranking.validate_key(key)


def test_key_for_an_empty_column_is_one_digit():
    assert len(ranking.key_between(None, None)) == 1


def test_keys_never_end_in_the_zero_digit():
    column = Column()
    for step in range(500):
        drop_alternating(column, step)
    assert all(key[-1] != ranking.DIGITS[0] for key in column.keys)


@pytest.mark.parametrize(("before", "after"), [("b", "a"), ("a", "a")])
def test_key_between_refuses_neighbours_out_of_order(before, after):
    with pytest.raises(ranking.InvalidKey):
        ranking.key_between(before, after)


@pytest.mark.parametrize("key", ["", "a0", "a-b", "é"])
def test_invalid_keys_are_refused(key):
    with pytest.raises(ranking.InvalidKey):
        ranking.validate_key(key)


@pytest.mark.parametrize("count", [1, 2, 3, 25, 31, 61, 62, 63, 500, 3843, 3844, 10_000])
def test_spaced_keys_are_distinct_short_and_ascending(count):
    keys = list(ranking.spaced_keys(count))
    assert len(keys) == count
    assert keys == sorted(keys)
    assert len(set(keys)) == count
    for key in keys:
        ranking.validate_key(key)
    assert max(map(len, keys)) <= 3


def test_spaced_keys_leave_room_between_them():
    keys = list(ranking.spaced_keys(1000))
    inserted = [ranking.key_between(low, high) for low, high in itertools.pairwise(keys)]
    assert max(map(len, inserted)) <= 4
