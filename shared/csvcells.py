"""CSV cells that a spreadsheet opens as text, never as a formula.

Excel, LibreOffice and Google Sheets run a cell that starts with = + - or @ as a formula, and
one that starts with a tab or a carriage return too (they skip it, then see the formula). Every
CSV acctsync writes puts such a text cell behind a single quote, which spreadsheets show as
text and hide; the NDJSON export stays exact.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(text: str) -> str:
    """`text`, with a leading single quote when a spreadsheet would run it as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
