"""Batched beam search for an attention decoder: every image's beams advance in one decoder call a step.

The decoder is any function `(features, tokens) -> (logits, attention)` over a batch of token
rows of fixed length, with causal masking, so that a compiled decoder sees one shape at every
step. Captions finish at the `end` token; a caption's score is its summed log-probability.
Beam 1 is greedy decoding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np


@dataclasses.dataclass
class Hypothesis:
    tokens: list[int]  # words only, without the start and end tokens
    log_prob: float
    attention: np.ndarray  # (words, grid cells): where each word looked


@dataclasses.dataclass
class Tokens:
    """The special tokens of a vocabulary."""

    pad: int
    start: int
    end: int


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@dataclasses.dataclass
class _Beams:
    """The live beams of n images: tokens (n, beam, length), scores (n, beam), attention (n, beam, words, cells)."""

    tokens: np.ndarray
    scores: np.ndarray
    attention: np.ndarray

    @classmethod
    def empty(cls, n: int, beam: int, length: int, cells: int) -> _Beams:
        return cls(
            np.zeros((n, beam, length), np.int32),
            np.full((n, beam), -np.inf),
            np.zeros((n, beam, length - 1, cells), np.float32),
        )


def _forbidden(vocab: int, step: int, max_length: int, special: Tokens) -> np.ndarray:
    """Tokens that may not come at `step`: pad and start always; anything but end at the last position."""
    banned = (special.pad, special.start) if step < max_length - 2 else [t for t in range(vocab) if t != special.end]
    return np.isin(np.arange(vocab), banned)


def _advance(
    beams: _Beams,
    i: int,
    candidates: np.ndarray,
    last_maps: np.ndarray,
    vocab: int,
    beam: int,
    special: Tokens,
    finished: list[Hypothesis],
    grown: _Beams,
) -> None:
    """Image i's best `beam` continuations into `grown`; the ones that end go to `finished`."""
    alive = 0
    for flat in np.argsort(-candidates)[: 2 * beam]:
        score = candidates[flat]
        if alive == beam or score == -np.inf:
            break
        parent, word = divmod(int(flat), vocab)
        if word == special.end:
            finished.append(Hypothesis(beams.tokens[i, parent, 1:].tolist(), float(score), beams.attention[i, parent]))
            continue
        grown.tokens[i, alive, :-1], grown.tokens[i, alive, -1] = beams.tokens[i, parent], word
        grown.scores[i, alive] = score
        grown.attention[i, alive] = np.concatenate([beams.attention[i, parent], last_maps[parent]])
        alive += 1
    # Scores only fall as words are added: once `beam` finished captions beat every live one, stop.
    best = sorted((h.log_prob for h in finished), reverse=True)
    if len(best) >= beam and grown.scores[i].max() <= best[beam - 1]:
        grown.scores[i] = -np.inf


def decode_batch(
    features: np.ndarray, decoder: Callable, beam: int, max_length: int, special: Tokens
) -> list[list[Hypothesis]]:
    """The `beam` best captions of each image of a batch of encoded images (n, cells, dim), best first."""
    n, cells = len(features), features.shape[1]
    features = np.repeat(features, beam, axis=0)
    beams = _Beams(
        np.full((n, beam, 1), special.start, np.int32),
        np.full((n, beam), -np.inf),
        np.zeros((n, beam, 0, cells), np.float32),
    )
    beams.scores[:, 0] = 0.0  # the beams start identical: expand only the first
    finished: list[list[Hypothesis]] = [[] for _ in range(n)]
    # Every step feeds all positions, padded, so the compiled decoder sees one shape; the causal
    # mask keeps the padding after `step` from changing the prediction at `step`.
    padded = np.full((n * beam, max_length - 1), special.pad, np.int32)
    for step in range(max_length - 1):
        padded[:, : step + 1] = beams.tokens.reshape(n * beam, -1)
        logits, maps = decoder(features, padded)
        log_probs = log_softmax(logits[:, step].astype(np.float64))
        vocab = log_probs.shape[-1]
        log_probs[:, _forbidden(vocab, step, max_length, special)] = -np.inf
        candidates = (beams.scores[..., None] + log_probs.reshape(n, beam, vocab)).reshape(n, beam * vocab)
        last_maps = maps[:, step].reshape(n, beam, 1, cells)
        grown = _Beams.empty(n, beam, step + 2, cells)
        for i in range(n):
            _advance(beams, i, candidates[i], last_maps[i], vocab, beam, special, finished[i], grown)
        beams = grown
        if np.all(beams.scores == -np.inf):
            break
    return [sorted(f, key=lambda h: -h.log_prob)[:beam] for f in finished]
