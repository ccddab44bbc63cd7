"""Decoder for unix ``compress`` (.Z) files, the format UCI serves ``shuttle.trn`` in.

LZW with codes packed LSB-first, starting at 9 bits and growing to ``maxbits`` (header byte
2, low 5 bits). In block mode (header bit 7) code 256 clears the table. The original
``compress`` writes codes in groups of ``n_bits`` bytes, so whenever the code width changes or
the table is cleared, the reader skips to the end of the current group.
"""

from __future__ import annotations

__all__ = ["decompress_z"]


def decompress_z(data: bytes) -> bytes:
    if len(data) < 3 or data[0] != 0x1F or data[1] != 0x9D:
        raise ValueError("not a unix compress (.Z) stream: bad magic bytes")
    maxbits, block_mode = data[2] & 0x1F, bool(data[2] & 0x80)
    if not 9 <= maxbits <= 16:
        raise ValueError(f"unsupported .Z code width {maxbits} (accepted: 9 to 16 bits)")
    src = bytes(data[3:]) + b"\0\0\0"  # padding so a 3-byte read never runs off the end
    end = (len(data) - 3) * 8
    max_free = 1 << maxbits
    table: list[bytes] = [bytes([i]) for i in range(256)] + [b""] * (max_free - 256)
    out = bytearray()
    n_bits, origin, pos = 9, 0, 0
    maxcode = (1 << 9) - 1  # widen past this code (reference decoders do so even at maxbits 9)
    free = 257 if block_mode else 256
    old, finchar = -1, 0

    def skip_group() -> None:  # end of the current group of n_bits bytes
        nonlocal origin, pos
        group = n_bits * 8
        origin += -(-pos // group) * group
        pos = 0

    while True:
        if free > maxcode:
            skip_group()
            n_bits += 1
            maxcode = max_free if n_bits == maxbits else (1 << n_bits) - 1
        at = origin + pos
        if at + n_bits > end:
            return bytes(out)
        code = (int.from_bytes(src[at >> 3 : (at >> 3) + 3], "little") >> (at & 7)) & (
            (1 << n_bits) - 1
        )
        pos += n_bits
        if old == -1:
            if code > 255:
                raise ValueError("corrupt .Z stream: first code is not a literal")
            out.append(code)
            old = finchar = code
            continue
        if code == 256 and block_mode:
            skip_group()
            n_bits, maxcode, free = 9, (1 << 9) - 1, 256
            continue
        if code < free:
            entry = table[code]
        elif code == free:  # the KwKwK case: the code being defined right now
            entry = table[old] + bytes([finchar])
        else:
            raise ValueError(f"corrupt .Z stream: code {code} before it was defined")
        out += entry
        finchar = entry[0]
        if free < max_free:
            table[free] = table[old] + bytes([finchar])
            free += 1
        old = code
