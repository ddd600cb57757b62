"""A grouped bar chart as a PNG, in pure Python (zlib + struct), so the benchmark needs no
plotting library on the controller. Text uses a built-in 5x7 bitmap font (upper case, digits,
a little punctuation); lower case is drawn as upper case.
"""

from __future__ import annotations

import struct
import zlib

# 5x7 glyphs: seven rows, two hex digits each, bit 4 = leftmost pixel.
_FONT = {
    "0": "0e11131519110e", "1": "040c040404040e", "2": "0e11010204081f", "3": "1f02040201110e",
    "4": "02060a121f0202", "5": "1f101e0101110e", "6": "0608101e11110e", "7": "1f010204080808",
    "8": "0e11110e11110e", "9": "0e11110f01020c", "A": "0e1111111f1111", "B": "1e11111e11111e",
    "C": "0e11101010110e", "D": "1c12111111121c", "E": "1f10101e10101f", "F": "1f10101e101010",
    "G": "0e11101711110f", "H": "1111111f111111", "I": "0e04040404040e",
    "J": "0702020202120c", "K": "11121418141211", "L": "1010101010101f", "M": "111b1515111111",
    "N": "11111915131111", "O": "0e11111111110e", "P": "1e11111e101010", "Q": "0e11111115120d",
    "R": "1e11111e141211", "S": "0f10100e01011e", "T": "1f040404040404", "U": "1111111111110e",
    "V": "11111111110a04", "W": "1111111515150a", "X": "11110a040a1111",
    "Y": "1111110a040404", "Z": "1f01020408101f", " ": "00000000000000", ".": "00000000000c0c",
    ",": "000000000c0408", ":": "000c0c000c0c00", "/": "00010204081000",
    "=": "00001f001f0000", "(": "02040808080402", ")": "08040202020408", "-": "0000001f000000",
    "_": "0000000000001f", "%": "18190204081303", "+": "0004041f040400", ">": "08040201020408",
    "<": "02040810080402", "#": "0a0a1f0a1f0a0a", "|": "04040404040404", "*": "0004150e150400",
    "'": "04040800000000", "?": "0e110102040004",
}
GLYPH_W, GLYPH_H = 6, 8  # with one pixel of spacing


class Canvas:
    def __init__(self, width: int, height: int, background=(255, 255, 255)) -> None:
        self.width, self.height = width, height
        self.rows = [bytearray(bytes(background) * width) for _ in range(height)]

    def rect(self, x: int, y: int, w: int, h: int, color) -> None:
        x0, x1 = max(0, x), min(self.width, x + w)
        if x1 <= x0:
            return
        span = bytes(color) * (x1 - x0)
        for row in self.rows[max(0, y):min(self.height, y + h)]:
            row[3 * x0:3 * x1] = span

    def text(self, x: int, y: int, s: str, color=(0, 0, 0), scale: int = 2) -> None:
        for ch in s.upper():
            glyph = _FONT.get(ch, _FONT["?"])
            for r in range(7):
                bits = int(glyph[2 * r:2 * r + 2], 16)
                for c in range(5):
                    if bits & (16 >> c):
                        self.rect(x + c * scale, y + r * scale, scale, scale, color)
            x += GLYPH_W * scale

    def png(self) -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        raw = b"".join(b"\x00" + bytes(row) for row in self.rows)  # filter 0 on every row
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)  # 8-bit RGB
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
                + chunk(b"IEND", b""))


def text_width(s: str, scale: int = 2) -> int:
    return len(s) * GLYPH_W * scale


PALETTE = [(54, 104, 168), (232, 131, 45), (90, 160, 90), (170, 70, 70)]


def grouped_bars(canvas: Canvas, x: int, y: int, w: int, h: int, title: str,
                 groups: list[tuple[str, list[float]]], series: list[str], unit: str = "") -> None:
    """Bars for each group (one per series), value printed on each bar, labels below."""
    grey, dark = (200, 200, 200), (40, 40, 40)
    canvas.text(x, y, title, dark, 2)
    legend_x = x
    for i, name in enumerate(series):
        canvas.rect(legend_x, y + 22, 12, 12, PALETTE[i % len(PALETTE)])
        canvas.text(legend_x + 16, y + 22, name, dark, 2)
        legend_x += 16 + text_width(name) + 20
    label_lines = max([len(label.split("\n")) for label, _ in groups] + [1])
    top, bottom = y + 60, y + h - 8 - label_lines * (GLYPH_H * 2 + 2)
    peak = max([v for _, values in groups for v in values if v is not None] + [1e-9])
    canvas.rect(x, bottom, w, 2, dark)
    for frac in (0.25, 0.5, 0.75, 1.0):
        canvas.rect(x, bottom - int((bottom - top) * frac), w, 1, grey)
    slot = w // max(1, len(groups))
    bar_w = max(6, min(60, (slot - 16) // max(1, len(series))))
    for g, (label, values) in enumerate(groups):
        gx = x + g * slot + (slot - bar_w * len(values)) // 2
        for i, value in enumerate(values):
            if value is None:
                continue
            bh = int((bottom - top) * value / peak)
            bx = gx + i * bar_w
            canvas.rect(bx + 1, bottom - bh, bar_w - 2, bh, PALETTE[i % len(PALETTE)])
            shown = f"{value:.0f}{unit}" if value >= 10 else f"{value:.1f}{unit}"
            scale = 2 if text_width(shown, 2) <= bar_w + 8 else 1
            canvas.text(bx + (bar_w - text_width(shown, scale)) // 2, bottom - bh - 8 * scale - 2,
                        shown, dark, scale)
        parts = label.split("\n")
        scale = 2 if max(text_width(p, 2) for p in parts) <= slot - 4 else 1
        for line_no, part in enumerate(parts):
            canvas.text(x + g * slot + (slot - text_width(part, scale)) // 2,
                        bottom + 6 + line_no * (GLYPH_H * scale + 2), part, dark, scale)
