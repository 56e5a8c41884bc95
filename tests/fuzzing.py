"""The one byte mutator of the property-based reader tests: truncate, flip, insert, or (on line-based
text) duplicate, drop or re-type a line's field."""

from __future__ import annotations

from hypothesis import strategies as st


def mutate(data: bytes, draw) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "dup_line", "drop_line", "field"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if kind == "flip":
        i = draw(st.integers(0, len(data) - 1))
        return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
    if kind == "insert":
        i = draw(st.integers(0, len(data)))
        return data[:i] + draw(st.binary(min_size=1, max_size=4)) + data[i:]
    lines = data.split(b"\n")
    i = draw(st.integers(0, len(lines) - 1))
    if kind == "dup_line":
        return b"\n".join(lines[: i + 1] + [lines[i]] + lines[i + 1 :])
    if kind == "drop_line":
        return b"\n".join(lines[:i] + lines[i + 1 :])
    sep = b"," if b"," in lines[i] else b" "
    fields = lines[i].split(sep)
    j = draw(st.integers(0, len(fields) - 1))
    fields[j] = draw(st.sampled_from([b"0", b"2", b"-2", b"x", b"1.5", b"", b"nan", b"\xff"]))
    return b"\n".join(lines[:i] + [sep.join(fields)] + lines[i + 1 :])
