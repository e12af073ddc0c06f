"""Caption metrics: corpus BLEU-1..4 and CIDEr-D, as the COCO caption evaluation computes them.

BLEU (Papineni et al., ACL 2002) is corpus-level: clipped n-gram counts and
candidate lengths are summed over all captions before the modified precisions
are taken, BLEU-n is the geometric mean of precisions 1..n, and the brevity
penalty compares the total candidate length with the total of each caption's
closest reference length (ties to the shorter). This is coco-caption's `Bleu`
(less its 1e-9-sized smoothing) and NLTK's `corpus_bleu`, except that NLTK
counts a candidate shorter than n words as having one n-gram.

CIDEr-D (Vedantam et al., CVPR 2015) is the variant coco-caption reports as
"CIDEr": TF-IDF weighted n-gram vectors (n = 1..4, document frequencies over
the reference sets of the evaluated corpus), clipped candidate counts, a
Gaussian length penalty with sigma = 6, averaged over references and n, times 10.

Captions are compared as given, split on spaces: normalise them first
(`zoo.data.captions.normalize`). tests/test_captioning.py checks both
functions against values computed by NLTK 3.10 and pycocoevalcap 1.2.
"""

from __future__ import annotations

import math
from collections import Counter

MAX_N = 4


def ngrams(words: list[str], max_n: int = MAX_N) -> Counter:
    return Counter(tuple(words[i : i + n]) for n in range(1, max_n + 1) for i in range(len(words) - n + 1))


def corpus_bleu(candidates: list[str], references: list[list[str]], max_n: int = MAX_N) -> dict[str, float]:
    """{"bleu_1": ..., "bleu_<max_n>": ...} for candidate captions against their reference sets."""
    if len(candidates) != len(references) or not candidates:
        raise ValueError("need one reference set per candidate, and at least one candidate")
    matches, totals = [0] * max_n, [0] * max_n
    candidate_length = reference_length = 0
    for candidate, refs in zip(candidates, references):
        words = candidate.split()
        ref_words = [r.split() for r in refs]
        counts = ngrams(words, max_n)
        best = Counter()  # the most times each n-gram occurs in any one reference
        for r in ref_words:
            best |= ngrams(r, max_n)
        for gram, count in counts.items():
            matches[len(gram) - 1] += min(count, best[gram])
        for n in range(max_n):
            totals[n] += max(len(words) - n, 0)
        candidate_length += len(words)
        reference_length += min((abs(len(r) - len(words)), len(r)) for r in ref_words)[1]
    brevity = (
        1.0
        if candidate_length > reference_length
        else (math.exp(1 - reference_length / candidate_length) if candidate_length else 0.0)
    )
    scores, log_sum = {}, 0.0
    for n in range(max_n):
        if matches[n] == 0:
            log_sum = -math.inf
        else:
            log_sum += math.log(matches[n] / totals[n])
        scores[f"bleu_{n + 1}"] = brevity * math.exp(log_sum / (n + 1)) if log_sum > -math.inf else 0.0
    return scores


def _tfidf(counts: Counter, document_frequency: Counter, log_documents: float) -> tuple[list[dict], list[float], int]:
    """Per-n TF-IDF vectors, their norms, and the length CIDEr-D's penalty uses."""
    vectors = [{} for _ in range(MAX_N)]
    norms = [0.0] * MAX_N
    for gram, count in counts.items():
        n = len(gram) - 1
        weight = count * (log_documents - math.log(max(1.0, document_frequency[gram])))
        vectors[n][gram] = weight
        norms[n] += weight * weight
    # coco-caption counts the candidate's bigrams here (its `n == 1`), not its words; kept for comparability.
    length = sum(counts[g] for g in counts if len(g) == 2)
    return vectors, [math.sqrt(v) for v in norms], length


def cider_d(candidates: list[str], references: list[list[str]], sigma: float = 6.0) -> float:
    """Corpus CIDEr-D: the mean over captions of each caption's CIDEr-D."""
    if len(candidates) != len(references) or not candidates:
        raise ValueError("need one reference set per candidate, and at least one candidate")
    ref_counts = [[ngrams(r.split()) for r in refs] for refs in references]
    document_frequency = Counter(gram for refs in ref_counts for gram in set().union(*refs))
    log_documents = math.log(len(candidates))
    total = 0.0
    for candidate, refs in zip(candidates, ref_counts):
        vec, norm, length = _tfidf(ngrams(candidate.split()), document_frequency, log_documents)
        score = 0.0
        for ref in refs:
            ref_vec, ref_norm, ref_length = _tfidf(ref, document_frequency, log_documents)
            penalty = math.exp(-((length - ref_length) ** 2) / (2 * sigma**2))
            for n in range(MAX_N):
                dot = sum(min(w, ref_vec[n].get(g, 0.0)) * ref_vec[n].get(g, 0.0) for g, w in vec[n].items())
                if norm[n] and ref_norm[n]:
                    score += dot / (norm[n] * ref_norm[n]) * penalty
        total += score / MAX_N / len(refs) * 10.0
    return total / len(candidates)


def caption_scores(candidates: list[str], references: list[list[str]]) -> dict[str, float]:
    """BLEU-1..4 and CIDEr-D, rounded, for a report."""
    scores = {**corpus_bleu(candidates, references), "cider": cider_d(candidates, references)}
    return {k: round(v, 4) for k, v in scores.items()}
