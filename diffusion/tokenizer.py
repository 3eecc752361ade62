"""Text <-> token ids for a checkpoint folder, with the special ids named.

Wraps a `tokenizers` `tokenizer.json`. Special ids are looked up by their
token strings (from the checkpoint's config and tokenizer files), never
assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

# Token strings the built-in tokenizer reserves. Checkpoints of other
# families bring their own strings through their config.
BUILTIN_SPECIALS = ("<|bos|>", "<|eos|>", "<|mask|>", "<|null|>", "<|pad|>")


@dataclass(frozen=True)
class SpecialIds:
    mask: int
    bos: int | None
    eos: int | None
    pad: int | None
    null: int | None  # the "no token here" filler of unused span positions
    expand: int | None = None  # DreamOn: a predicted expand turns one mask into two

    def stripped(self) -> frozenset[int]:
        """Ids that never appear in text handed back to a user."""
        ids = (self.bos, self.eos, self.pad, self.null, self.mask, self.expand)
        return frozenset(i for i in ids if i is not None)


class TextCodec:
    """Encodes and decodes text for one checkpoint."""

    def __init__(self, tokenizer: Tokenizer, specials: SpecialIds) -> None:
        # Text is text: a literal "<|mask|>" in the user's code is encoded as the characters it
        # is, not as the mask id (which the denoiser would fill and decoding would drop).
        tokenizer.encode_special_tokens = True
        self._tokenizer = tokenizer
        self.specials = specials
        self._stripped = specials.stripped()

    @classmethod
    def from_file(cls, path: Path, specials: SpecialIds) -> TextCodec:
        return cls(Tokenizer.from_file(str(path)), specials)

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def token_id(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        """Text of `ids` with special and null ids dropped."""
        kept = [i for i in ids if i not in self._stripped]
        return self._tokenizer.decode(kept, skip_special_tokens=False) if kept else ""

    def save(self, path: Path) -> None:
        self._tokenizer.save(str(path))
