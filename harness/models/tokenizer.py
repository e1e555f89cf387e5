"""Tokenizers behind one small interface: the tiny model's own character vocabulary, or a
transformers tokenizer of a real dLLM. The diffusion core only needs ids for mask, EOS and pad.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from harness.ground.errors import BenchError


class Tokenizer(Protocol):
    mask_token_id: int
    eos_token_id: int
    pad_token_id: int
    vocab_size: int
    bos_prefix: tuple[int, ...]  # what every prompt starts with: (BOS,) or () by family

    def encode(self, text: str) -> list[int]: ...

    def encode_prompt(self, text: str) -> list[int]:
        """A prompt's ids: ``bos_prefix`` + the text (once, even if a chat template put it)."""
        ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def chat(self, prompt: str) -> str:
        """The prompt wrapped in the model's chat template (identity for base models)."""
        ...


CHAR_TOKENIZER_FILE = "bench_char_tokenizer.json"


class CharTokenizer:
    """Character-level vocabulary for the tiny dLLM: needs no download and never fails to encode.

    Pad is separate from mask (batched sampling left-pads and must never unmask padding) and from
    EOS (SFT pads answers with EOS and trains the model to predict it).
    """

    SPECIALS = ("<pad>", "<eos>", "<mask>", "<unk>")

    def __init__(self, chars: str | None = None) -> None:
        self.chars = (
            chars
            if chars is not None
            else "\n" + "".join(c for c in string.printable if c not in "\t\n\r\x0b\x0c")
        )
        self._index = {c: i + len(self.SPECIALS) for i, c in enumerate(self.chars)}
        self.pad_token_id, self.eos_token_id, self.mask_token_id, self.unk_token_id = range(4)
        self.vocab_size = len(self.SPECIALS) + len(self.chars)

    bos_prefix: tuple[int, ...] = ()

    def encode(self, text: str) -> list[int]:
        return [self._index.get(c, self.unk_token_id) for c in text]

    def encode_prompt(self, text: str) -> list[int]:
        return self.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        n = len(self.SPECIALS)
        return "".join(self.chars[i - n] for i in (int(j) for j in ids) if i >= n)

    def chat(self, prompt: str) -> str:
        return prompt

    def save_pretrained(self, folder: str | Path) -> None:
        path = Path(folder) / CHAR_TOKENIZER_FILE
        path.write_text(json.dumps({"type": "bench-char", "chars": self.chars}))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> CharTokenizer:
        data = json.loads((Path(folder) / CHAR_TOKENIZER_FILE).read_text())
        return cls(data["chars"])


def with_prefix(ids: Sequence[int], prefix: Sequence[int]) -> list[int]:
    """``prefix`` + ``ids``, unless ``ids`` already starts with it."""
    ids, prefix = list(ids), list(prefix)
    return ids if ids[: len(prefix)] == prefix else prefix + ids


def keep_tail(ids: Sequence[int], room: int, prefix: Sequence[int]) -> list[int]:
    """The last tokens of a prompt that fit in ``room``, still starting with ``prefix`` (BOS)."""
    ids, prefix = list(ids), list(prefix)
    if len(ids) <= room:
        return ids
    body = ids[len(prefix) :] if ids[: len(prefix)] == prefix else ids
    keep = max(0, room - len(prefix))
    return prefix + (body[-keep:] if keep else [])


class HFTokenizer:
    """A transformers tokenizer seen through the :class:`Tokenizer` interface.

    ``prepend_bos``: prompts start with the tokenizer's BOS (LLaDA and Dream, as their released
    SFT and evaluation code do). Decoding skips special tokens and ids beyond the tokenizer's
    vocabulary (real models pad their output vocabulary past it).
    """

    def __init__(
        self,
        tok,
        name: str,
        mask_token_id: int | None = None,
        prepend_bos: bool = False,
        needs_mask: bool = True,
    ) -> None:
        self.tok = tok
        mask = mask_token_id if mask_token_id is not None else tok.mask_token_id
        if mask is None and needs_mask:
            raise BenchError(
                f"the tokenizer of {name!r} has no mask token: a masked-diffusion model needs one "
                "(set mask_token in its tokenizer config or pass --mask-token-id)"
            )
        # None for a uniform-noise family (DiffusionGemma): it corrupts with random tokens
        self._mask = int(mask) if mask is not None else None
        self._name = name
        if tok.eos_token_id is None:
            raise BenchError(f"the tokenizer of {name!r} has no EOS token")
        self.eos_token_id = int(tok.eos_token_id)
        pad = tok.pad_token_id
        self.pad_token_id = int(pad) if pad is not None and pad != self._mask else self.eos_token_id
        self.vocab_size = len(tok)
        bos = tok.bos_token_id
        if prepend_bos and bos is None:
            raise BenchError(
                f"the tokenizer of {name!r} has no BOS token, which this model family's prompts "
                "start with"
            )
        self.bos_prefix: tuple[int, ...] = (int(bos),) if prepend_bos else ()
        self.has_chat_template = bool(getattr(tok, "chat_template", None))

    @property
    def mask_token_id(self) -> int:
        """The mask id; a model without one (uniform noise) stops every masked-diffusion use
        (sampler, likelihood, lm-eval) here with one line."""
        if self._mask is None:
            raise BenchError(
                f"model {self._name!r} has no mask token (a uniform-noise model): masked-diffusion "
                "sampling, likelihood scoring and lm-eval do not apply; DiffusionGemma trains "
                "and samples through bench run (generation tasks)"
            )
        return self._mask

    @property
    def has_mask_token(self) -> bool:
        return self._mask is not None

    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def encode_prompt(self, text: str) -> list[int]:
        return with_prefix(self.encode(text), self.bos_prefix)

    def decode(self, ids: Sequence[int]) -> str:
        known = [int(i) for i in ids if 0 <= int(i) < self.vocab_size]
        return self.tok.decode(known, skip_special_tokens=True)

    def chat(self, prompt: str) -> str:
        if not self.has_chat_template:
            return prompt
        messages = [{"role": "user", "content": prompt}]
        return self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
