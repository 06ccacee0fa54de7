"""Fractional-index keys that order cards within a column.

A key is a string over DIGITS read as a base-62 fraction 0.d1d2d3…; keys never end in
the zero digit, so string order (bytewise) equals numeric order. Moving a card computes
one new key strictly between its new neighbours: one UPDATE, nothing renumbered.

Splitting the same gap again and again is the common case on a board (a rep keeps
dropping cards at the top of a column). Cutting the gap in half each time would add a
bit per move; instead the new key is placed close to the neighbour that looks newer
(a key at least two digits longer), which leaves most of the gap free for the next
drop in the same spot, so keys grow logarithmically in that pattern. An adversarial
pattern can still grow keys, so callers re-space a column when a key gets longer
than MAX_KEY_LENGTH.
"""

from collections.abc import Iterator

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BASE = len(DIGITS)
_VALUE = {digit: index for index, digit in enumerate(DIGITS)}

# Longest key a move may produce before the column is re-spaced (the column holds 128).
MAX_KEY_LENGTH = 48
# Share of the gap the new key may be placed in, on the side of the newer neighbour.
_NEAR_SHARE = BASE * BASE


class InvalidKey(ValueError):
    pass


def validate_key(key: str) -> None:
    if not key or key[-1] == DIGITS[0] or any(char not in _VALUE for char in key):
        raise InvalidKey(f"{key!r} is not a rank key")


def _to_int(key: str, precision: int) -> int:
    number = 0
    for char in key.ljust(precision, DIGITS[0]):
        number = number * BASE + _VALUE[char]
    return number


def _to_key(number: int, precision: int) -> str:
    chars = []
    for _ in range(precision):
        number, digit = divmod(number, BASE)
        chars.append(DIGITS[digit])
    return "".join(reversed(chars)).rstrip(DIGITS[0])


def _shortest_in(low: int, high: int, precision: int) -> str:
    """The shortest key whose value lies in the open interval (low, high)."""
    for length in range(1, precision + 1):
        step = BASE ** (precision - length)
        candidate = (low // step + 1) * step
        if candidate < high:
            return _to_key(candidate, precision)
    raise AssertionError("interval too narrow for its precision")  # precision leaves room


def key_between(before: str | None, after: str | None) -> str:
    """A key strictly greater than `before` and strictly less than `after`.

    None stands for the top (before) or the bottom (after) of the column.
    """
    for key in (before, after):
        if key is not None:
            validate_key(key)
    if before is not None and after is not None and before >= after:
        raise InvalidKey(f"{before!r} is not before {after!r}")

    precision = max(len(before or ""), len(after or "")) + 3
    low = _to_int(before, precision) if before is not None else 0
    high = _to_int(after, precision) if after is not None else BASE**precision
    width = high - low
    near = max(width // _NEAR_SHARE, 2)

    if before is None and after is None:
        return _shortest_in(low + width // 3, high - width // 3, precision)
    if after is None or (before is not None and len(before) >= len(after) + 2):
        # Appending, or the upper neighbour is the newer one: stay close to it.
        return _shortest_in(low, low + near, precision)
    if before is None or len(after) >= len(before) + 2:
        return _shortest_in(high - near, high, precision)
    return _shortest_in(low + width // 4, high - width // 4, precision)


def spaced_keys(count: int) -> Iterator[str]:
    """`count` keys in ascending order, evenly spread, as short as possible."""
    if count <= 0:
        return
    length = 1
    while BASE**length <= count:
        length += 1
    span = BASE**length
    for index in range(1, count + 1):
        yield _shortest_in(
            (index * span) // (count + 1) - span // (2 * (count + 1)),
            (index * span) // (count + 1) + span // (2 * (count + 1)) + 1,
            length,
        )


def key_for_index(index: int, width: int = 6) -> str:
    """The index-th key of a fixed-width ascending sequence (seeding, bulk imports)."""
    if index <= 0 or index >= BASE**width:
        raise ValueError("index out of range")
    digits = []
    for _ in range(width):
        index, digit = divmod(index, BASE)
        digits.append(DIGITS[digit])
    key = "".join(reversed(digits)).rstrip(DIGITS[0])
    return key
