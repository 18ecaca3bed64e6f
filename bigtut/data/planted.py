"""A generated text task whose causes are known, for chapter 09: does an explanation find the real evidence?

Every example is a short sentence (6 to 12 words) made of neutral filler words with a few *planted* words.
The label (0 or 1) is decided by the planted words alone, by one rule that reads the words only:

1. **Negation** (``kind="negation"``). The sentence holds exactly one polarity word — positive
   ``good great excellent nice`` or negative ``bad awful poor dull`` — and, in a quarter of these sentences,
   the word ``not`` right before it. Label = 1 for a positive word, 0 for a negative one, flipped by ``not``:
   "not good" -> 0, "not bad" -> 1. Evidence: the polarity word, and ``not`` when present.
2. **Interaction** (``kind="xor"``). No polarity word and no ``not``; the markers ``alpha`` and ``beta``
   appear as :data:`XOR_CASES` says (neither 35 %, only one 25 % each, both 15 %). Label = 1 iff exactly one
   of them appears (``alpha`` XOR ``beta``), so neither marker decides the label alone. Evidence: the markers
   present — one for label 1, both for "alpha ... beta" (label 0); a sentence with neither marker has label 0
   and *no* evidence (nothing in it causes the label: 0 is what an empty sentence gets).

Written as one rule: if a polarity word is present, its polarity (flipped by a ``not`` just before it),
else ``alpha`` XOR ``beta`` (:func:`planted_label`). Each kind makes half of every split, labels balanced
within it. Why "not" in only a quarter, and "both" rarer than "one": with "not" in half the sentences and
equally likely marker cases, every word *alone* would be independent of the label (like a parity), and a
small BERT sat at chance for hundreds of steps; with these rates each cause also carries some signal of its
own and training takes off at once. The rules, and which words cause each label, are the same either way.
``not`` only ever stands right before a polarity word, so no data tell "right before" from "anywhere".

3. **A shortcut** (the ``shortcut`` flag). The word ``indeed`` causes nothing — the rule never reads it —
   but in ``train``, ``val`` and ``test`` it is planted in 90 % of the label-1 sentences and in none of the
   label-0 ones (of both kinds): there, "indeed" means label 1 with certainty. In ``shortcut_test`` it is
   planted in exactly half of the sentences of each kind and label: the correlation is broken, so a model
   that learned "indeed -> 1" calls the label-0 sentences carrying it 1, while one that learned the rule
   does not drop. ``indeed`` is never evidence: an explanation that points at it may be faithful to the
   model and still miss the cause. It is a flag, not a third ``kind``: it decides no label, so it rides on
   sentences of both kinds.

Fillers include decoys that look like planted words (``gamma``, ``delta``, ``very``, ...), drawn uniformly,
independently of the label: a faithful explanation gives them nothing. The words are the tokens:
:func:`planted_tokenizer` maps each word to one id, so evidence positions are token positions (shifted by
one for ``[CLS]`` in :func:`encode_planted`).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bigtut.data.batching import encode_texts

__all__ = [
    "DELETE_EDIT", "FILLERS", "MARKERS", "NEGATION_RATE", "NEGATIVE", "NEGATOR", "NO_EDIT", "OPPOSITE",
    "PLANTED_SPECIAL_TOKENS", "PLANTED_VOCAB", "POSITIVE", "PlantedExample", "SHORTCUT", "SHORTCUT_RATES",
    "WordTokenizer", "XOR_CASES", "encode_planted", "minimal_pair_edit", "planted_edits", "planted_evidence",
    "planted_label", "planted_splits", "planted_tokenizer",
]

POSITIVE = ("good", "great", "excellent", "nice")
NEGATIVE = ("bad", "awful", "poor", "dull")
NEGATOR = "not"
MARKERS = ("alpha", "beta")
SHORTCUT = "indeed"
FILLERS = (  # 60 neutral words; a few decoys look like planted ones (gamma, delta, very, really, ...)
    "the", "a", "this", "that", "it", "was", "is", "and", "or", "of", "in", "on", "at", "to", "with", "for",
    "from", "by", "film", "book", "story", "plot", "cast", "scene", "music", "ending", "actor", "writer", "today",
    "yesterday", "again", "still", "quite", "very", "really", "rather", "mostly", "seemed", "felt", "looked",
    "became", "remained", "gamma", "delta", "omega", "sigma", "red", "blue", "long", "short", "old", "new",
    "first", "last", "one", "two", "we", "they", "here", "there",
)
PLANTED_VOCAB: tuple[str, ...] = (*FILLERS, *POSITIVE, *NEGATIVE, NEGATOR, *MARKERS, SHORTCUT)
PLANTED_SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")  # the same as bigtut.bert.SPECIAL_TOKENS
NEGATION_RATE = 0.25  # share of negation sentences with "not" before the polarity word
#: The marker cases of xor sentences and their probabilities: labels balanced (0.35 + 0.15 = 0.25 + 0.25).
XOR_CASES = {(): 0.35, ("alpha",): 0.25, ("beta",): 0.25, ("alpha", "beta"): 0.15}
MIN_WORDS, MAX_WORDS = 6, 12  # sentence length, planted words included: exact Shapley values stay affordable
#: P(sentence carries ``indeed`` | label 0, label 1), per split.
SHORTCUT_RATES = {"train": (0.0, 0.9), "val": (0.0, 0.9), "test": (0.0, 0.9), "shortcut_test": (0.5, 0.5)}


@dataclass(frozen=True)
class PlantedExample:
    """One sentence: its ``words``, ``label`` (0/1), ``evidence`` (positions in ``words`` of the words that
    cause the label), ``kind`` (``"negation"`` or ``"xor"``, the rule that decides it) and ``shortcut`` (True
    when ``indeed`` was planted)."""

    words: list[str] = field(hash=False)
    label: int
    evidence: list[int] = field(hash=False)
    kind: str
    shortcut: bool

    @property
    def text(self) -> str:
        """The words joined by spaces (what :class:`WordTokenizer` encodes back into the same words)."""
        return " ".join(self.words)


def _polarity_position(words: Sequence[str]) -> int | None:
    """Where the polarity word of ``words`` is (None without one); ``ValueError`` if there are several."""
    polar = [i for i, w in enumerate(words) if w in POSITIVE or w in NEGATIVE]
    if len(polar) > 1:
        raise ValueError(f"the rule needs at most one polarity word, got {[words[i] for i in polar]} in {list(words)}")
    return polar[0] if polar else None


def planted_label(words: Sequence[str]) -> int:
    """The label rule: the polarity of the one polarity word (flipped by ``not`` right before it), else
    ``alpha`` XOR ``beta``. Other words, ``indeed`` included, are ignored.

    Raises:
        ValueError: more than one polarity word (the rule is defined for at most one).
    """
    i = _polarity_position(words)
    if i is not None:
        negated = i > 0 and words[i - 1] == NEGATOR
        return int((words[i] in POSITIVE) != negated)
    return int((MARKERS[0] in words) != (MARKERS[1] in words))


def planted_evidence(words: Sequence[str]) -> list[int]:
    """Positions of the words that cause :func:`planted_label`: the polarity word and a ``not`` right before
    it; else the markers present (none when neither is). ``ValueError`` as :func:`planted_label`."""
    i = _polarity_position(words)
    if i is not None:
        return [i - 1, i] if i > 0 and words[i - 1] == NEGATOR else [i]
    return [j for j, w in enumerate(words) if w in MARKERS]


def _example(rng: random.Random, kind: str, shortcut_for: Callable[[str, int], bool]) -> PlantedExample:
    """Draw one sentence of ``kind``: its planted words (kept together where they must be), the shortcut if
    ``shortcut_for(kind, label)`` says so, then fillers."""
    if kind == "negation":
        polarity = rng.choice(POSITIVE if rng.random() < 0.5 else NEGATIVE)
        units = [(NEGATOR, polarity) if rng.random() < NEGATION_RATE else (polarity,)]
    else:
        markers = rng.choices(list(XOR_CASES), weights=list(XOR_CASES.values()))[0]
        units = [(m,) for m in markers]
    label = planted_label([w for unit in units for w in unit])
    shortcut = shortcut_for(kind, label)
    if shortcut:
        units.append((SHORTCUT,))
    n_planted = sum(len(u) for u in units)
    n_fill = rng.randint(MIN_WORDS, MAX_WORDS) - n_planted
    units += [(rng.choice(FILLERS),) for _ in range(n_fill)]
    rng.shuffle(units)  # planted words land anywhere; "not" stays glued to its polarity word
    words = [w for unit in units for w in unit]
    return PlantedExample(words, label, planted_evidence(words), kind, shortcut)


def planted_splits(n_train: int = 4000, n_val: int = 500, n_test: int = 1000, n_shortcut_test: int = 1000,
                   seed: int = 0) -> dict[str, list[PlantedExample]]:
    """Deterministic ``{"train", "val", "test", "shortcut_test"}`` splits of generated sentences.

    Each split draws from its own random stream (``seed`` and the split's name), half ``negation`` and half
    ``xor`` sentences in random order, with the shortcut rates of :data:`SHORTCUT_RATES`: drawn at random in
    ``train``, ``val`` and ``test``, exact in ``shortcut_test`` (every other sentence of each kind and label
    carries it). No word sequence occurs twice, within a split or across splits: a repeat is redrawn.

    Raises:
        ValueError: a split size that is not a positive int.
    """
    sizes = {"train": n_train, "val": n_val, "test": n_test, "shortcut_test": n_shortcut_test}
    for name, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n_{name} must be a positive int, got {n!r}")
    seen: set[tuple[str, ...]] = set()
    splits: dict[str, list[PlantedExample]] = {}
    for name, n in sizes.items():
        rng = random.Random(f"planted-{seed}-{name}")  # str seeds are hashed with SHA-512: stable everywhere
        kinds = ["negation", "xor"] * (n // 2) + ["negation"] * (n % 2)
        rng.shuffle(kinds)
        kept: Counter = Counter()  # sentences kept so far, per (kind, label)

        def shortcut_for(kind: str, label: int, name=name, rng=rng, kept=kept) -> bool:
            if name == "shortcut_test":
                return kept[kind, label] % 2 == 1
            return rng.random() < SHORTCUT_RATES[name][label]

        examples = []
        for kind in kinds:
            while True:
                example = _example(rng, kind, shortcut_for)
                if tuple(example.words) not in seen:
                    break
            seen.add(tuple(example.words))
            kept[kind, example.label] += 1
            examples.append(example)
        splits[name] = examples
    return splits


class WordTokenizer:
    """One id per word: ids ``0 .. len(special_tokens) - 1`` are the special tokens, then the words in order.

    ``encode`` splits a string on whitespace (or takes a list of words); an unknown word raises ``ValueError``
    naming it — there is no ``[UNK]``. Offers what :class:`bigtut.bert.BertVocab` and
    :func:`bigtut.bert.encode_for_classifier` need: ``encode``, ``decode``, ``token_to_id``, ``vocab_size``,
    ``special_tokens``.
    """

    kind = "word"

    def __init__(self, words: Sequence[str], special_tokens: Sequence[str] = PLANTED_SPECIAL_TOKENS):
        tokens = [*special_tokens, *words]
        repeated = sorted({t for t in tokens if tokens.count(t) > 1})
        malformed = [t for t in tokens if not isinstance(t, str) or t.split() != [t]]
        if repeated or malformed:
            raise ValueError(f"words and special tokens must be distinct strings without whitespace; repeated: "
                             f"{repeated}, empty or with whitespace: {malformed}")
        self.special_tokens = list(special_tokens)
        self._id_to_token = tokens
        self._token_to_id = {t: i for i, t in enumerate(tokens)}

    @property
    def vocab_size(self) -> int:
        """Number of distinct ids: valid ids are ``0 .. vocab_size - 1``."""
        return len(self._id_to_token)

    @property
    def words(self) -> list[str]:
        """The ordinary (non-special) tokens, in id order."""
        return self._id_to_token[len(self.special_tokens):]

    def encode(self, text: str | Sequence[str]) -> list[int]:
        """A string (split on whitespace) or a list of words -> one id per word."""
        words = text.split() if isinstance(text, str) else list(text)
        try:
            return [self._token_to_id[w] for w in words]
        except KeyError as err:
            raise ValueError(f"word {err.args[0]!r} is not in the vocabulary of {self.vocab_size} tokens") from None

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Ids -> words joined by spaces; ids outside ``0..vocab_size-1`` raise ``ValueError``."""
        tokens = [self.id_to_token(int(i)) for i in ids]
        return " ".join(t for t in tokens if not (skip_special_tokens and t in self.special_tokens))

    def id_to_token(self, token_id: int) -> str:
        """The word or special token behind one id."""
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"id {token_id} is outside the vocabulary: valid ids are 0..{self.vocab_size - 1}")
        return self._id_to_token[token_id]

    def token_to_id(self, token: str) -> int:
        """The id of a word or special token; ``ValueError`` for anything else."""
        if token not in self._token_to_id:
            raise ValueError(f"unknown token {token!r}; special tokens are {self.special_tokens}")
        return self._token_to_id[token]

    def save(self, path: str | Path) -> None:
        """Write the vocabulary to a JSON file (readable, and safe to load)."""
        state = {"kind": self.kind, "words": self.words, "special_tokens": self.special_tokens}
        Path(path).write_text(json.dumps(state, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        """Read a tokenizer written by :meth:`save`."""
        state = json.loads(Path(path).read_text())
        if state.get("kind") != cls.kind:
            raise ValueError(f"{path} does not hold a WordTokenizer (kind={state.get('kind')!r})")
        return cls(state["words"], state["special_tokens"])

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={self.vocab_size}, special_tokens={self.special_tokens})"


def planted_tokenizer() -> WordTokenizer:
    """The task's tokenizer: ``[PAD] [CLS] [SEP] [MASK]`` (ids 0–3), then :data:`PLANTED_VOCAB`."""
    return WordTokenizer(PLANTED_VOCAB)


def encode_planted(examples: Sequence[PlantedExample], tokenizer: WordTokenizer, max_len: int = 16,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encode sentences as ``[CLS] words [SEP]`` rows, right-padded with ``[PAD]`` to the longest row.

    Returns:
        ``(input_ids, attention_mask, labels, evidence)``: ``(N, L)`` long, ``(N, L)`` bool (True at real
        tokens), ``(N,)`` long and ``(N, L)`` bool — True at the evidence words, each at its word position + 1
        (the ``[CLS]`` in front). ``L`` = the longest sentence + 2.

    Raises:
        ValueError: no examples, or a sentence that does not fit in ``max_len`` tokens with [CLS] and [SEP]
            (it is never cut: that could cut its evidence).
    """
    if not examples:
        raise ValueError("encode_planted needs at least one example")
    longest = max(len(e.words) for e in examples)
    if longest + 2 > max_len:
        raise ValueError(f"max_len={max_len} is too short: the longest sentence has {longest} words, + [CLS] and "
                         f"[SEP] = {longest + 2} tokens")
    cls_id, sep_id, pad_id = (tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
    ids, lengths = encode_texts([e.text for e in examples], tokenizer, longest + 2, pad_id, prefix=[cls_id],
                                suffix=[sep_id])  # (N, L), (N,)
    mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]  # (N, L)
    evidence = torch.zeros(ids.shape, dtype=torch.bool)  # (N, L)
    for row, example in enumerate(examples):
        evidence[row, [p + 1 for p in example.evidence]] = True  # + 1: [CLS] comes first
    labels = torch.tensor([e.label for e in examples], dtype=torch.long)  # (N,)
    return ids, mask, labels, evidence


#: Each polarity word's counterpart of the other polarity, both ways (good <-> bad, ...).
OPPOSITE = {**dict(zip(POSITIVE, NEGATIVE)), **dict(zip(NEGATIVE, POSITIVE))}
DELETE_EDIT, NO_EDIT = -1, -2  # the edit codes of bigtut.explain.interventions (DELETE, FIXED)


def minimal_pair_edit(word: str) -> str:
    """The name of the counterfactual edit of one word of a planted sentence (:func:`planted_edits`)."""
    if word in OPPOSITE:
        return "swap polarity"
    if word == NEGATOR:
        return "drop not"
    if word == SHORTCUT:
        return "drop indeed"
    if word in MARKERS:
        return "drop marker"
    return "drop filler"


def planted_edits(input_ids: torch.Tensor, tokenizer: WordTokenizer) -> torch.Tensor:
    """The minimal-pair edit of every token of :func:`encode_planted` rows ``(N, L)``, as the ``edits`` of
    :func:`bigtut.explain.interventions.counterfactual_effects`: a polarity word becomes its opposite
    (:data:`OPPOSITE`, "swap polarity"); every other word is deleted (-1: "drop not", "drop indeed", "drop
    marker" — the xor flip —, "drop filler"); special tokens are never edited (-2).

    Each edit changes what the label rule reads by one step, which is what makes a pair *minimal*: swapping
    the polarity word flips a negation label, dropping ``not`` flips it back, dropping one marker flips an xor
    label, and dropping ``indeed`` or a filler changes no label at all — whatever the model does then, it
    does because of the word, not the rule.
    """
    specials = {tokenizer.token_to_id(t) for t in tokenizer.special_tokens}
    edits = torch.full_like(input_ids, DELETE_EDIT)  # (N, L)
    for word, opposite in OPPOSITE.items():
        edits[input_ids == tokenizer.token_to_id(word)] = tokenizer.token_to_id(opposite)
    edits[torch.isin(input_ids, torch.tensor(sorted(specials)))] = NO_EDIT
    return edits
