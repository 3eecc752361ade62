"""Line endings at the model's boundary: the model reads and writes `\\n`, a document may use
`\\r\\n` or (old Mac files) a bare `\\r`.

Text going to the engine is normalised to `\\n` (the built-in model and the
open checkpoints were trained on such code, and `\\r` tokens would only
confuse them); text coming back is written with the document's own ending,
so that an edit never mixes endings in a file.
"""

from __future__ import annotations

from dataclasses import replace

from diffusion.engine import Candidate


def line_ending(text: str) -> str:
    """The document's ending: the most common of `\\r\\n`, `\\n` and a bare `\\r` (ties: `\\r\\n`
    before `\\n` before `\\r`; a file with no line break: `\\n`)."""
    crlf = text.count("\r\n")
    counts = {"\r\n": crlf, "\n": text.count("\n") - crlf, "\r": text.count("\r") - crlf}
    ending = max(counts, key=counts.__getitem__)  # the first of the most common, in that order
    return ending if counts[ending] else "\n"


def for_model(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def for_document(text: str, ending: str) -> str:
    return text if ending == "\n" else for_model(text).replace("\n", ending)


def candidate_for_document(candidate: Candidate, ending: str) -> Candidate:
    if ending == "\n":
        return candidate
    segments = tuple(replace(s, text=for_document(s.text, ending)) for s in candidate.segments)
    return replace(candidate, segments=segments)
