"""The HTML `srcset` attribute, parsed as browsers parse it.

Image CDNs put commas inside URLs (`/upload/c_fill,w_1200/vase.jpg 1200w`), so a srcset
cannot be split on commas: a URL is a run of non-whitespace, and only a comma *after* it
(or glued to its end) separates candidates. This is the WHATWG algorithm "parse a srcset
attribute" (HTML Living Standard, section 4.8.4.3.10), including its descriptor tokenizer
(parentheses protect commas, e.g. in future descriptors) and its rules for dropping
invalid candidates (two width descriptors, `0w`, a negative density, `h` without `w`).

Written here rather than taken from PyPI: the only package for it (`srcset`, 0.2.0, first
released 2026-10, one author) is too new to count as well-kept; the algorithm is short and
tested against the standard's own examples in tests/crawler/test_extract.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WHITESPACE = " \t\n\r\f"  # ASCII whitespace as HTML defines it
_INTEGER = re.compile(r"[0-9]+")
_FLOAT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class Candidate:
    """One image candidate: its URL as written, and its width (`w`) or density (`x`)."""

    url: str
    width: int | None = None
    density: float | None = None


def parse_srcset(value: str) -> list[Candidate]:
    """The valid candidates of a srcset value, in the order written (invalid ones dropped)."""
    candidates: list[Candidate] = []
    position, end = 0, len(value)
    while True:
        while position < end and (value[position] in _WHITESPACE or value[position] == ","):
            position += 1
        if position >= end:
            return candidates
        start = position
        while position < end and value[position] not in _WHITESPACE:
            position += 1
        url = value[start:position]
        descriptors: list[str] = []
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            descriptors, position = _tokenize_descriptors(value, position)
        candidate = _candidate(url, descriptors)
        if candidate is not None and url:
            candidates.append(candidate)


def _tokenize_descriptors(value: str, position: int) -> tuple[list[str], int]:
    """The descriptors after a URL, and the position after them (past a closing comma)."""
    end = len(value)
    while position < end and value[position] in _WHITESPACE:
        position += 1
    descriptors: list[str] = []
    current = ""
    state = "in descriptor"
    while True:
        char = value[position] if position < end else None
        if state == "in descriptor":
            if char is None:
                if current:
                    descriptors.append(current)
                return descriptors, position
            if char in _WHITESPACE:
                if current:
                    descriptors.append(current)
                    current = ""
                    state = "after descriptor"
            elif char == ",":
                if current:
                    descriptors.append(current)
                return descriptors, position + 1
            elif char == "(":
                current += char
                state = "in parens"
            else:
                current += char
        elif state == "in parens":
            if char is None:
                descriptors.append(current)
                return descriptors, position
            current += char
            if char == ")":
                state = "in descriptor"
        else:  # after descriptor
            if char is None:
                return descriptors, position
            if char not in _WHITESPACE:
                state = "in descriptor"
                continue  # reconsume this character in the descriptor state
        position += 1


def _candidate(url: str, descriptors: list[str]) -> Candidate | None:
    """The candidate these descriptors describe, or None when the standard drops it."""
    width: int | None = None
    density: float | None = None
    height: int | None = None
    for descriptor in descriptors:
        number, kind = descriptor[:-1], descriptor[-1:]
        if kind == "w" and _INTEGER.fullmatch(number):
            if width is not None or density is not None or int(number) == 0:
                return None
            width = int(number)
        elif kind == "x" and _FLOAT.fullmatch(number):
            if width is not None or density is not None or height is not None:
                return None
            density = float(number)
            if density < 0:
                return None
        elif kind == "h" and _INTEGER.fullmatch(number):
            if height is not None or density is not None or int(number) == 0:
                return None
            height = int(number)
        else:
            return None
    if height is not None and width is None:
        return None
    return Candidate(url, width=width, density=density)


def largest_first(candidates: list[Candidate]) -> list[str]:
    """Candidate URLs, largest first: by width, then by density (none written = 1x).

    Width and density cannot be compared without the page's layout (`sizes`), so every
    width candidate comes before every density candidate; ties keep the written order.
    """
    ranked = sorted(
        range(len(candidates)),
        key=lambda i: (
            candidates[i].width is None,
            -(candidates[i].width or 0),
            -(candidates[i].density if candidates[i].density is not None else 1.0),
            i,
        ),
    )
    return [candidates[i].url for i in ranked]
