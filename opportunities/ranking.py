"""Fractional-index keys that order cards within a column.

A key is a string over DIGITS read as a base-62 fraction 0.d1d2d3…; keys never end in
the zero digit, so string order (bytewise) equals numeric order. Moving a card computes
one new key strictly between its new neighbours: one UPDATE, nothing renumbered.

Splitting the same gap again and again is the common case on a board (a rep keeps
dropping cards at the top of a column, or right under the same card). Cutting the gap
in half each time would add a bit per drop; instead the new key hugs the neighbour that
looks newer (a key at least two digits longer), which leaves almost all of the gap free
for the next drop in the same spot, so keys stay short in those patterns.

Hugging has one bad case: the next drop lands in the sliver between the new key and the
neighbour it hugs (a zigzag between the two newest cards). To recognise it, the last
digit of every key records how the key was placed (its value modulo 3: hugging the
lower neighbour, hugging the upper one, or neither). A newer neighbour that hugs this
very gap means a zigzag, and the key goes in the middle: halving is the best any scheme
can do there. Keys can still grow in that pattern, so callers re-space a column when a
key would get longer than MAX_KEY_LENGTH.
"""

from collections.abc import Iterator

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BASE = len(DIGITS)
_VALUE = {digit: index for index, digit in enumerate(DIGITS)}

# Longest key a move may produce before the column is re-spaced (the column holds 128).
MAX_KEY_LENGTH = 48
# A hugging key goes within 1/_NEAR_SHARE of the gap from the neighbour it hugs.
_NEAR_SHARE = BASE * BASE
# How a key was placed, stored as the value of its last digit modulo 3.
_MIDDLE, _HUGS_LOWER, _HUGS_UPPER = 0, 1, 2


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


def _placement(key: str) -> int:
    return _VALUE[key[-1]] % 3


def _shortest_in(low: int, high: int, precision: int, placement: int) -> str:
    """The shortest key in the open interval (low, high) whose last digit records `placement`."""
    for length in range(1, precision + 1):
        step = BASE ** (precision - length)
        candidate = (low // step + 1) * step
        # Five consecutive last digits always include each placement (0 is skipped, and
        # BASE is not a multiple of 3, so around the wrap 61, 0, 1, 2, 3 are needed).
        for _ in range(5):
            if candidate >= high:
                break
            digit = (candidate // step) % BASE
            if digit and digit % 3 == placement:
                return _to_key(candidate, precision)
            candidate += step
    raise AssertionError("interval too narrow for its precision")  # callers leave room


def key_between(before: str | None, after: str | None) -> str:
    """A key strictly greater than `before` and strictly less than `after`.

    None stands for the top (before) or the bottom (after) of the column.
    """
    for key in (before, after):
        if key is not None:
            validate_key(key)
    if before is not None and after is not None and before >= after:
        raise InvalidKey(f"{before!r} is not before {after!r}")

    # Three spare digits: two distinct keys then differ by at least BASE**3 units, so even
    # a hugging window (1/_NEAR_SHARE of the gap) holds BASE candidates.
    precision = max(len(before or ""), len(after or "")) + 3
    low = _to_int(before, precision) if before is not None else 0
    high = _to_int(after, precision) if after is not None else BASE**precision
    width = high - low
    near = max(width // _NEAR_SHARE, BASE)

    if before is None and after is None:
        return _shortest_in(low + width // 3, high - width // 3, precision, _MIDDLE)
    if after is None:  # appending at the bottom: the next append comes below this one
        return _shortest_in(low, low + near, precision, _HUGS_LOWER)
    if before is None:  # the top of the column
        return _shortest_in(high - near, high, precision, _HUGS_UPPER)
    if len(before) >= len(after) + 2 and _placement(before) != _HUGS_UPPER:
        return _shortest_in(low, low + near, precision, _HUGS_LOWER)
    if len(after) >= len(before) + 2 and _placement(after) != _HUGS_LOWER:
        return _shortest_in(high - near, high, precision, _HUGS_UPPER)
    return _shortest_in(low + width // 4, high - width // 4, precision, _MIDDLE)


def spaced_keys(count: int) -> Iterator[str]:
    """`count` keys in ascending order, evenly spread, as short as possible.

    Each key is the shortest one in its own slice of the key space, so the keys are
    strictly increasing and every gap between them is wide enough for many drops.
    """
    if count <= 0:
        return
    precision = 1
    # Every slice must hold a few candidates of the finest length (see _shortest_in).
    while BASE**precision < 8 * (count + 1):
        precision += 1
    span = BASE**precision
    half = span // (2 * (count + 1))
    for index in range(1, count + 1):
        centre = index * span // (count + 1)
        yield _shortest_in(centre - half, centre + half, precision, _MIDDLE)


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
