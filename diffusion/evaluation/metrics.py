"""Text metrics of a completion against its reference middle: pure functions."""

from __future__ import annotations

import ast


def exact_match(completion: str, reference: str) -> bool:
    """Equal after trailing whitespace is ignored on each line and at the end."""

    def norm(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.rstrip().splitlines())

    return norm(completion) == norm(reference)


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def edit_similarity(completion: str, reference: str) -> float:
    """1 - Levenshtein distance / length of the longer string (1.0 for two empty strings)."""
    longest = max(len(completion), len(reference))
    return 1.0 if longest == 0 else 1.0 - levenshtein(completion, reference) / longest


def python_parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return True
