"""Tokenizers: text -> list of integer ids -> text.

* :class:`CharTokenizer` — one id per character seen in training (plus special tokens). Small vocabulary,
  long sequences, and an exact round trip on any text made of known characters.
* :class:`BPETokenizer` — byte-level byte-pair encoding, as in GPT-2: start from the 256 byte values, then
  repeatedly merge the most frequent adjacent pair into a new token. Any text can be encoded (no unknowns),
  common words become single tokens, and sequences get ~2–3x shorter on English prose.

Both share one interface: ``train``, ``encode``, ``decode``, ``vocab_size``, ``token_to_id``,
``id_to_token``, ``save`` and ``load`` (JSON). Special tokens (``"<pad>"``, ``"[MASK]"``, …) get their own
ids; they are never produced by ``encode`` from plain text — ask for their id with ``token_to_id``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["BPETokenizer", "CharTokenizer", "load_tokenizer"]


class _Tokenizer:
    """What both tokenizers share: the id <-> token tables, decoding checks, JSON persistence."""

    kind = ""

    def __init__(self, tokens: Sequence[str | bytes], special_tokens: Sequence[str]):
        if len(set(special_tokens)) != len(special_tokens):
            raise ValueError(f"special tokens must be distinct, got {list(special_tokens)}")
        self.special_tokens = list(special_tokens)
        self._id_to_token = list(tokens)
        self._special_to_id = {tok: i for i, tok in enumerate(self._id_to_token) if tok in set(special_tokens)}

    @property
    def vocab_size(self) -> int:
        """Number of distinct ids: valid ids are ``0 .. vocab_size - 1``."""
        return len(self._id_to_token)

    def __len__(self) -> int:
        return self.vocab_size

    def id_to_token(self, token_id: int) -> str | bytes:
        """The token behind one id (a string for characters and specials, bytes for BPE pieces)."""
        self._check_ids([token_id])
        return self._id_to_token[token_id]

    def token_to_id(self, token: str) -> int:
        """The id of a special token or a single known character; ``ValueError`` for anything else."""
        if token in self._special_to_id:
            return self._special_to_id[token]
        raise ValueError(f"unknown token {token!r}; special tokens are {self.special_tokens}")

    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"ids {bad[:5]} are outside the vocabulary: valid ids are 0..{self.vocab_size - 1}")
        return ids

    def save(self, path: str | Path) -> None:
        """Write the tokenizer to a JSON file (readable, and safe to load: no pickle)."""
        Path(path).write_text(json.dumps({"kind": self.kind, **self._state()}, ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path: str | Path):
        """Read a tokenizer written by :meth:`save`."""
        state = json.loads(Path(path).read_text())
        if state.pop("kind", None) != cls.kind:
            raise ValueError(f"{path} does not hold a {cls.__name__}")
        return cls._from_state(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, special_tokens={self.special_tokens})"


class CharTokenizer(_Tokenizer):
    """One id per character.

    Ids ``0 .. len(special_tokens) - 1`` are the special tokens (in the order given), then the characters in
    sorted order. Characters not seen in training map to ``unk_token`` if one was given; otherwise
    :meth:`encode` raises ``ValueError`` naming the character — never a silent wrong id.
    """

    kind = "char"

    def __init__(self, chars: Sequence[str], special_tokens: Sequence[str] = (), unk_token: str | None = None):
        if unk_token is not None and unk_token not in special_tokens:
            special_tokens = [*special_tokens, unk_token]
        if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise ValueError("chars must be distinct single characters")
        super().__init__([*special_tokens, *chars], special_tokens)
        self.unk_token = unk_token
        self._char_to_id = {c: i + len(special_tokens) for i, c in enumerate(chars)}

    @classmethod
    def train(cls, text: str, special_tokens: Sequence[str] = (), unk_token: str | None = None) -> CharTokenizer:
        """Vocabulary = the sorted set of characters in ``text`` (which must not be empty)."""
        if not isinstance(text, str) or not text:
            raise ValueError(f"CharTokenizer.train needs a non-empty string, got {text!r:.40}")
        return cls(sorted(set(text)), special_tokens, unk_token)

    def encode(self, text: str) -> list[int]:
        """``str`` -> list of ids, one per character."""
        if self.unk_token is not None:
            unk = self._special_to_id[self.unk_token]
            return [self._char_to_id.get(c, unk) for c in text]
        try:
            return [self._char_to_id[c] for c in text]
        except KeyError as err:
            position = text.index(err.args[0])
            raise ValueError(f"character {err.args[0]!r} at position {position} is not in the vocabulary; "
                             f"train on text that contains it or pass unk_token='<unk>'") from None

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """List of ids -> ``str``; ids outside ``0..vocab_size-1`` raise ``ValueError``."""
        ids = self._check_ids(ids)
        specials = set(self._special_to_id.values())
        return "".join(self._id_to_token[i] for i in ids if not (skip_special_tokens and i in specials))

    def token_to_id(self, token: str) -> int:
        if token in self._char_to_id:
            return self._char_to_id[token]
        return super().token_to_id(token)

    def _state(self) -> dict:
        return {"chars": list(self._char_to_id), "special_tokens": [t for t in self.special_tokens
                                                                    if t != self.unk_token],
                "unk_token": self.unk_token}

    @classmethod
    def _from_state(cls, state: dict) -> CharTokenizer:
        return cls(state["chars"], state["special_tokens"], state["unk_token"])


# Pre-tokenization: merges never cross these pieces (words with their leading space, numbers, punctuation
# runs, whitespace), which keeps tokens meaningful and training fast.
_PIECE = re.compile(r" ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+|_+")


class BPETokenizer(_Tokenizer):
    """Byte-level byte-pair encoding.

    Ids ``0..255`` are the raw bytes, then one id per learned merge (in the order learned), then the special
    tokens. Because every byte has an id, every string can be encoded; ``decode`` joins the bytes and reads
    them as UTF-8 (a sequence cut inside a multi-byte character shows ``\\ufffd`` for the broken piece).
    """

    kind = "bpe"

    def __init__(self, merges: Sequence[tuple[int, int]], special_tokens: Sequence[str] = ()):
        pieces: list[bytes] = [bytes([b]) for b in range(256)]
        for a, b in merges:
            if not (0 <= a < len(pieces) and 0 <= b < len(pieces)):
                raise ValueError(f"merge ({a}, {b}) refers to a token that does not exist yet")
            pieces.append(pieces[a] + pieces[b])
        super().__init__([*pieces, *special_tokens], special_tokens)
        self.merges = [tuple(m) for m in merges]
        self._rank = {pair: 256 + i for i, pair in enumerate(self.merges)}  # pair -> id of the merged token
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def train(cls, text: str, vocab_size: int, special_tokens: Sequence[str] = (), verbose: bool = False):
        """Learn up to ``vocab_size - 256 - len(special_tokens)`` merges from ``text``.

        Training stops early when no adjacent pair is left to merge (a short text), so the vocabulary can
        end up smaller than asked: check ``vocab_size`` of the result.

        Raises:
            TypeError: ``vocab_size`` is not an int.
            ValueError: ``vocab_size`` is smaller than the 256 byte values plus the special tokens.
        """
        alphabet = 256 + len(special_tokens)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
        if vocab_size < alphabet:
            raise ValueError(f"vocab_size={vocab_size} is smaller than the alphabet: 256 bytes + "
                             f"{len(special_tokens)} special tokens = {alphabet}; choose vocab_size >= {alphabet}")
        words = [(list(piece.encode("utf-8")), n) for piece, n in Counter(_PIECE.findall(text)).items()]
        pair_counts: Counter = Counter()
        where: dict[tuple[int, int], set[int]] = {}  # pair -> indices of the words that contain it
        for w, (symbols, n) in enumerate(words):
            for pair in zip(symbols, symbols[1:]):
                pair_counts[pair] += n
                where.setdefault(pair, set()).add(w)
        merges: list[tuple[int, int]] = []
        for new_id in range(256, vocab_size - len(special_tokens)):
            if not pair_counts:
                break
            best = max(pair_counts.items(), key=lambda item: (item[1], -item[0][0], -item[0][1]))[0]
            merges.append(best)
            for w in where.pop(best, ()):
                symbols, n = words[w]
                for pair in zip(symbols, symbols[1:]):  # forget this word's old pairs ...
                    pair_counts[pair] -= n
                    if pair_counts[pair] <= 0:
                        del pair_counts[pair]
                symbols = _merge(symbols, best, new_id)
                words[w] = (symbols, n)
                for pair in zip(symbols, symbols[1:]):  # ... and count its new ones
                    pair_counts[pair] += n
                    where.setdefault(pair, set()).add(w)
            if verbose and len(merges) % 100 == 0:
                print(f"{len(merges)} merges")
        return cls(merges, special_tokens)

    def _encode_piece(self, piece: str) -> list[int]:
        if piece not in self._cache:
            symbols = list(piece.encode("utf-8"))
            while len(symbols) > 1:
                ranked = [(self._rank.get(pair, 1 << 30), pair) for pair in zip(symbols, symbols[1:])]
                rank, pair = min(ranked)
                if rank == 1 << 30:
                    break
                symbols = _merge(symbols, pair, rank)
            self._cache[piece] = symbols
        return self._cache[piece]

    def encode(self, text: str) -> list[int]:
        """``str`` -> list of ids (never fails: every byte has an id)."""
        return [i for piece in _PIECE.findall(text) for i in self._encode_piece(piece)]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """List of ids -> ``str``; ids outside ``0..vocab_size-1`` raise ``ValueError``."""
        out, buffer = [], b""
        for i in self._check_ids(ids):
            token = self._id_to_token[i]
            if isinstance(token, str):  # a special token
                out.append(buffer.decode("utf-8", errors="replace"))
                buffer = b""
                if not skip_special_tokens:
                    out.append(token)
            else:
                buffer += token
        out.append(buffer.decode("utf-8", errors="replace"))
        return "".join(out)

    def _state(self) -> dict:
        return {"merges": [list(m) for m in self.merges], "special_tokens": self.special_tokens}

    @classmethod
    def _from_state(cls, state: dict) -> BPETokenizer:
        return cls([tuple(m) for m in state["merges"]], state["special_tokens"])


def _merge(symbols: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of ``pair`` in ``symbols`` (left to right) by ``new_id``."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def load_tokenizer(path: str | Path) -> CharTokenizer | BPETokenizer:
    """Load whichever tokenizer :meth:`save` wrote to ``path``."""
    kind = json.loads(Path(path).read_text()).get("kind")
    classes = {"char": CharTokenizer, "bpe": BPETokenizer}
    if kind not in classes:
        raise ValueError(f"{path} does not hold a bigtut tokenizer (kind={kind!r})")
    return classes[kind].load(path)
