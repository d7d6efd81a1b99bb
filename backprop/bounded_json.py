"""Parsing JSON text a person gave us, with what parsing builds known before it is parsed.

`json.loads` builds Python objects worth up to about 26 bytes for every byte of text: a 4 MB
`[[],[],...]` becomes 100 MB of empty lists, and text nested thousands of levels deep ends in a
RecursionError. Here the text is scanned first (NumPy, a chunk at a time, so it can be scanned
while it is read) for how many values it can hold and how deeply it nests; past a limit, or with
a parsing cost over the memory budget, it is refused with a message naming the field, at the
first chunk that crosses the limit, and only then parsed.
"""

import json

import numpy as np

from .budget import check_bytes
from .errors import InputError

# What json.loads builds, at most, measured with tracemalloc: per value 32 bytes for an empty list,
# 36 an empty dict, 48 a list of one number, 64 a one-key dict, 72 an object's distinct key with
# its value; per byte of UTF-8 text, the text decoded and the strings made of it (a string with one
# character beyond U+FFFF takes 4 bytes for every character): 8. Both with a margin.
BYTES_PER_VALUE = 80
BYTES_PER_TEXT_BYTE = 10
SCAN_CHUNK = 1 << 22  # code units scanned at a time: the scan's own memory stays a few tens of MB

_OPEN, _CLOSE = (ord("["), ord("{")), (ord("]"), ord("}"))
_SEPARATORS = (ord(","), ord(":"))


class JsonScan:
    """How many values JSON text can hold and how deeply it nests, fed a piece at a time as arrays
    of its code units (uint8 for UTF-8 bytes, uint32 for UTF-32 characters); feed() raises
    InputError(field, ...) naming `what` (e.g. "'meta'") as soon as either passes its limit.

    Values: every value but the first follows a "[", "{", "," or ":", so counting those bounds the
    values from above; inside strings they count too, which only overestimates (the Studio writes
    none there), and so does an empty array or object. Depth: the running count of opening less
    closing brackets. A string full of closing brackets could hide real nesting from it: json.loads'
    own recursion limit (about 1,000 levels) stops such text, and parse() says so. Code units of
    multi-byte UTF-8 characters are never ASCII, so a unit-wise scan cannot mistake them."""

    def __init__(self, field, what, max_values, max_depth):
        self.field, self.what = field, what
        self.max_values, self.max_depth = int(max_values), int(max_depth)
        self.values, self.depth, self.deepest = 1, 0, 0

    def feed(self, codes):
        for start in range(0, len(codes), SCAN_CHUNK):
            piece = codes[start:start + SCAN_CHUNK]
            opens = (piece == _OPEN[0]) | (piece == _OPEN[1])
            separators = (piece == _SEPARATORS[0]) | (piece == _SEPARATORS[1])
            self.values += int(np.count_nonzero(opens)) + int(np.count_nonzero(separators))
            if self.values > self.max_values:
                raise InputError(self.field, f"{self.what} holds more than {self.max_values:,} JSON values, "
                                             "the limit")
            steps = opens.view(np.int8) - ((piece == _CLOSE[0]) | (piece == _CLOSE[1])).view(np.int8)
            steps = steps[steps != 0]
            if len(steps):
                running = np.cumsum(steps, dtype=np.int64)
                self.deepest = max(self.deepest, self.depth + int(running.max()))
                self.depth += int(running[-1])
            if self.deepest > self.max_depth:
                raise InputError(self.field, f"{self.what} nests arrays and objects {self.deepest:,} levels "
                                             f"deep, over the limit of {self.max_depth}")
        return self

    def parse(self, text):
        """json.loads(text), the UTF-8 bytes (or bytearray) this scan was fed, once what parsing builds
        fits the memory budget."""
        check_bytes(BYTES_PER_VALUE * self.values + BYTES_PER_TEXT_BYTE * len(text), self.field,
                    f"parsing {self.what} ({self.values:,} JSON values)")
        try:
            return json.loads(text)
        except RecursionError:
            raise InputError(self.field, f"{self.what} nests arrays and objects deeper than JSON can be read "
                                         f"(its strings hide brackets); the limit is {self.max_depth} "
                                         "levels") from None
        except ValueError as error:  # JSONDecodeError, bad UTF-8, an integer of over 4,300 digits
            raise InputError(self.field, f"{self.what} is not valid JSON: {error}") from None


def parse_bounded(data, field, what, max_values, max_depth):
    """json.loads(data) (UTF-8 bytes) once its values, nesting and parsing cost are known to be
    within max_values, max_depth and the memory budget; InputError(field, ...) naming `what`
    otherwise, and for text that is not JSON."""
    scan = JsonScan(field, what, max_values, max_depth)
    return scan.feed(np.frombuffer(data, dtype=np.uint8)).parse(data)


__all__ = ["BYTES_PER_VALUE", "JsonScan", "parse_bounded"]
