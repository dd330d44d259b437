#!/usr/bin/env python3
"""Writes the vendor-style print jobs and the card images they must print.

Written from the reference fact sheet ("What drivers that print on real
printers send"), independently of the project's Rust code, so that the
simulator is checked against the fact sheet rather than against itself:

- a panel goes over the wire as 1016 lines of 648 pixels; line n is the
  card's column n from the left edge, pixel p of a line is the card's row
  647 - p (each line starts at the card's bottom edge);
- one bit a pixel, 81 bytes a line, first pixel in the byte's top bit, 1 = ink;
- `Dbc` compression of a one-bit panel, line by line: 0 = white line,
  255 = black line, N (1..81) = N bytes of the line follow, the rest is white;
- frames are ESC mnemonic;params CR; NUL padding between frames and at the end.

Usage: make_jobs.py [--check]   (--check compares with the files here)
"""

import struct
import sys
import zlib
from pathlib import Path

W, H = 1016, 648  # the card face, landscape, as the cardholder sees it
LINE_BYTES = H // 8  # 81
ESC, CR = b"\x1b", b"\r"


def face(rects):
    """A card face: rows of W booleans, True where ink goes."""
    img = [[False] * W for _ in range(H)]
    for x0, y0, x1, y1 in rects:
        for y in range(y0, y1):
            for x in range(x0, x1):
                img[y][x] = True
    return img


def frame_rects(inset, thick):
    return [
        (inset, inset, W - inset, inset + thick),
        (inset, H - inset - thick, W - inset, H - inset),
        (inset, inset, inset + thick, H - inset),
        (W - inset - thick, inset, W - inset, H - inset),
    ]


# The front: a frame, a filled square in the top-left corner, a large "F"
# (no symmetry: flipped or turned, it reads wrong) and a dot at bottom right.
FRONT = face(
    frame_rects(30, 6)
    + [
        (60, 60, 180, 180),
        (400, 200, 440, 520),
        (400, 200, 640, 240),
        (400, 340, 580, 380),
        (900, 560, 960, 600),
    ]
)

# The back: a band where a magnetic stripe would be, an "L", a square at the
# right.
BACK = face(
    [
        (0, 50, W, 150),
        (100, 250, 140, 550),
        (100, 510, 340, 550),
        (880, 200, 960, 280),
    ]
)


def panel_lines(img):
    """The K panel's 1016 lines of 81 bytes, by the fact sheet's orientation."""
    lines = []
    for n in range(W):  # line n = column n
        bits = bytearray(LINE_BYTES)
        for p in range(H):  # pixel p = row 647 - p
            if img[H - 1 - p][n]:
                bits[p // 8] |= 0x80 >> (p % 8)
        lines.append(bytes(bits))
    return lines


def compress_k(lines):
    out = bytearray()
    for line in lines:
        if not any(line):
            out.append(0)
        elif all(b == 0xFF for b in line):
            out.append(255)
        else:
            n = max(i for i, b in enumerate(line) if b) + 1
            out.append(n)
            out += line[:n]
    return bytes(out)


def cmd(text, payload=b""):
    return ESC + text.encode("ascii") + payload + CR


def vendor_mono():
    """The vendor's driver, monochrome card (fact sheet's first example)."""
    data = compress_k(panel_lines(FRONT))
    return b"".join(
        [
            cmd("Pr;k"),
            cmd("Pmi;F;s"),
            cmd("Pc;k;=;10"),
            cmd("Pdt;DU"),
            cmd("Mr;s"),
            cmd("Ppws;N"),
            cmd("Ss"),
            cmd("Sr"),
            cmd("Dbc;k;2;%d;" % len(data), data),
            b"\x00" * 32,
            cmd("Se;1"),
            b"\x00" * 64,
        ]
    )


def public_duplex():
    """A public driver, front and back (fact sheet's second example)."""
    return b"".join(
        [
            cmd("Pr;k"),
            cmd("Pmi;F;s"),
            cmd("Pc;k;=;10"),
            cmd("Ss"),
            cmd("Sr"),
            cmd("Db;k;2;", b"".join(panel_lines(FRONT))),
            cmd("Sv"),
            cmd("Pc;k;=;10"),
            cmd("Db;k;2;", b"".join(panel_lines(BACK))),
            cmd("Se"),
            b"\x00" * 64,
        ]
    )


def png(img):
    """An 8-bit grey PNG: black where ink goes, white elsewhere."""
    raw = b"".join(b"\x00" + bytes(0 if v else 255 for v in row) for row in img)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


FILES = {
    "vendor-mono.job": vendor_mono,
    "public-duplex.job": public_duplex,
    "front.png": lambda: png(FRONT),
    "back.png": lambda: png(BACK),
}


def main():
    here = Path(__file__).resolve().parent
    check = "--check" in sys.argv[1:]
    stale = []
    for name, make in FILES.items():
        data = make()
        path = here / name
        if check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(name)
        else:
            path.write_bytes(data)
            print(f"wrote {path} ({len(data)} bytes)")
    if stale:
        print("out of date (run make_jobs.py): " + ", ".join(stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
