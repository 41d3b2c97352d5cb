"""HPACK (RFC 7541) for the CLI's small gRPC client: a decoder and a plain encoder.

Owns what `cli.fastcall` needs of HTTP/2 header compression: integer and string
coding, the static table, the decoder's dynamic table (insertion, eviction,
size updates) and an encoder that writes every field as a literal without
indexing and without Huffman coding (always valid, and the peer keeps no
state for it). Huffman decoding is left out on purpose: a gRPC server built on
grpc-core writes header names and text values as plain strings, so a
Huffman-coded string is kept as an opaque `Huffman` value and the caller
decides whether it can do without it.
"""
from __future__ import annotations

from typing import Union

# RFC 7541 Appendix A: indices 1..61.
STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = (
    (b":authority", b""), (b":method", b"GET"), (b":method", b"POST"), (b":path", b"/"),
    (b":path", b"/index.html"), (b":scheme", b"http"), (b":scheme", b"https"),
    (b":status", b"200"), (b":status", b"204"), (b":status", b"206"), (b":status", b"304"),
    (b":status", b"400"), (b":status", b"404"), (b":status", b"500"),
    (b"accept-charset", b""), (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""), (b"accept-ranges", b""), (b"accept", b""),
    (b"access-control-allow-origin", b""), (b"age", b""), (b"allow", b""),
    (b"authorization", b""), (b"cache-control", b""), (b"content-disposition", b""),
    (b"content-encoding", b""), (b"content-language", b""), (b"content-length", b""),
    (b"content-location", b""), (b"content-range", b""), (b"content-type", b""),
    (b"cookie", b""), (b"date", b""), (b"etag", b""), (b"expect", b""), (b"expires", b""),
    (b"from", b""), (b"host", b""), (b"if-match", b""), (b"if-modified-since", b""),
    (b"if-none-match", b""), (b"if-range", b""), (b"if-unmodified-since", b""),
    (b"last-modified", b""), (b"link", b""), (b"location", b""), (b"max-forwards", b""),
    (b"proxy-authenticate", b""), (b"proxy-authorization", b""), (b"range", b""),
    (b"referer", b""), (b"refresh", b""), (b"retry-after", b""), (b"server", b""),
    (b"set-cookie", b""), (b"strict-transport-security", b""), (b"transfer-encoding", b""),
    (b"user-agent", b""), (b"vary", b""), (b"via", b""), (b"www-authenticate", b""),
)
ENTRY_OVERHEAD = 32          # RFC 7541 §4.1: an entry's size is name + value + 32
DEFAULT_TABLE_SIZE = 4096    # SETTINGS_HEADER_TABLE_SIZE unless the decoder's side says otherwise
_MAX_INT_BYTES = 5           # continuation bytes of one integer (up to 2**35: plenty)


class HpackError(Exception):
    """A header block this decoder cannot read (the connection's state is then unusable)."""


class Huffman(bytes):
    """A Huffman-coded string, kept as received (this decoder does not expand it)."""


Text = Union[bytes, Huffman]


def decode_int(data: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    """The integer whose first byte is data[pos] (its low `prefix_bits` bits), and the next pos."""
    if pos >= len(data):
        raise HpackError("truncated integer")
    limit = (1 << prefix_bits) - 1
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    for _ in range(_MAX_INT_BYTES):
        if pos >= len(data):
            raise HpackError("truncated integer")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
    raise HpackError("integer too long")


def encode_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """`value` with a `prefix_bits`-bit prefix; `first` holds the first byte's other bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_string(data: bytes, pos: int) -> tuple[Text, int]:
    """The string literal at data[pos] (plain bytes, or `Huffman` when so coded)."""
    if pos >= len(data):
        raise HpackError("truncated string")
    huffman = bool(data[pos] & 0x80)
    length, pos = decode_int(data, pos, 7)
    end = pos + length
    if end > len(data):
        raise HpackError("truncated string")
    raw = bytes(data[pos:end])
    return (Huffman(raw) if huffman else raw), end


def encode_string(text: bytes) -> bytes:
    return encode_int(len(text), 7) + text


def encode_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    """A header block: each field a literal without indexing, new name, no Huffman coding."""
    return b"".join(b"\x00" + encode_string(name) + encode_string(value)
                    for name, value in headers)


def entry_size(name: bytes, value: bytes) -> int:
    return len(name) + len(value) + ENTRY_OVERHEAD


class Decoder:
    """One connection's HPACK decoding context (the dynamic table survives between blocks).

    `max_size` is what this side announced as SETTINGS_HEADER_TABLE_SIZE: the
    encoder may shrink the table below it with size updates, never grow it past.
    (A plain class: the CLI's start-up path does without the dataclasses module.)
    """

    def __init__(self, max_size: int = DEFAULT_TABLE_SIZE) -> None:
        self.max_size = max_size
        self.table: list[tuple[Text, Text]] = []    # newest first
        self.size = 0                                # RFC 7541 §4.1 sizes of the entries
        self.limit = max_size    # the table's current maximum size (set by updates)

    def lookup(self, index: int) -> tuple[Text, Text]:
        if index <= 0:
            raise HpackError("header index 0")
        if index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        dynamic = index - len(STATIC_TABLE) - 1
        if dynamic >= len(self.table):
            raise HpackError(f"header index {index} beyond the tables")
        return self.table[dynamic]

    def _evict_to(self, limit: int) -> None:
        while self.size > limit and self.table:
            name, value = self.table.pop()
            self.size -= entry_size(name, value)

    def add(self, name: Text, value: Text) -> None:
        """Inserts an entry, evicting the oldest ones to make room (RFC 7541 §4.4)."""
        size = entry_size(name, value)
        self._evict_to(self.limit - size)
        if size <= self.limit:
            self.table.insert(0, (name, value))
            self.size += size

    def resize(self, limit: int) -> None:
        if limit > self.max_size:
            raise HpackError(f"table size update to {limit} above the {self.max_size} allowed")
        self.limit = limit
        self._evict_to(limit)

    def decode(self, block: bytes) -> list[tuple[Text, Text]]:
        """The header fields of one complete header block, in order."""
        fields: list[tuple[Text, Text]] = []
        pos = 0
        seen_field = False
        while pos < len(block):
            byte = block[pos]
            if byte & 0x80:                        # indexed field
                index, pos = decode_int(block, pos, 7)
                fields.append(self.lookup(index))
                seen_field = True
                continue
            if byte & 0xE0 == 0x20:                # dynamic table size update
                if seen_field:
                    raise HpackError("table size update after a header field")
                limit, pos = decode_int(block, pos, 5)
                self.resize(limit)
                continue
            incremental = bool(byte & 0x40)        # else without indexing / never indexed
            index, pos = decode_int(block, pos, 6 if incremental else 4)
            name: Text
            if index:
                name = self.lookup(index)[0]
            else:
                name, pos = decode_string(block, pos)
            value, pos = decode_string(block, pos)
            if incremental:
                self.add(name, value)
            fields.append((name, value))
            seen_field = True
        return fields
