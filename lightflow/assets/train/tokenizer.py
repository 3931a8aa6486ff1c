"""A tiny CLIP tokenizer: byte-level BPE whose merges make every vocabulary word one token.

The merges are *learned* from the word list with the ordinary BPE training loop (most
frequent pair first, applied everywhere), not written by hand per word. Encoding
replays merges in the same order as training, so each word ends as a single token and
the merges of one word cannot break another (the pitfall of hand-written merges, where
"r e" from "red" broke "green").

Example::

    save_tokenizer("out/tokenizer")
    tok = CLIPTokenizer.from_pretrained("out/tokenizer")
    tok("a red seven").input_ids     # [bos, a, red, seven, eos]
"""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise
from pathlib import Path

from transformers import CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

from lightflow.assets.train.data import COLOUR_NAMES, DIGIT_WORDS

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
EOW = "</w>"
MAX_LENGTH = 16
WORDS: tuple[str, ...] = ("a", "an", "the", "digit", "number", *COLOUR_NAMES, *DIGIT_WORDS)




def learn_merges(words: tuple[str, ...]) -> list[tuple[str, str]]:
    """BPE training on ``words`` until every word is a single symbol."""
    table = bytes_to_unicode()
    seqs = []
    for w in words:
        chars = [table[b] for b in w.encode("utf-8")]
        seqs.append([*chars[:-1], chars[-1] + EOW])
    merges: list[tuple[str, str]] = []
    while any(len(s) > 1 for s in seqs):
        pairs: Counter[tuple[str, str]] = Counter()
        for s in seqs:
            pairs.update(pairwise(s))
        # most frequent first; ties broken by the pair itself, so the result is deterministic
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for i, s in enumerate(seqs):
            out: list[str] = []
            j = 0
            while j < len(s):
                if j + 1 < len(s) and (s[j], s[j + 1]) == best:
                    out.append(s[j] + s[j + 1])
                    j += 2
                else:
                    out.append(s[j])
                    j += 1
            seqs[i] = out
    return merges


def build_vocab(words: tuple[str, ...] = WORDS) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP-style vocabulary: 256 bytes, 256 bytes + '</w>', merged symbols, specials."""
    chars = list(bytes_to_unicode().values())
    merges = learn_merges(words)
    tokens = chars + [c + EOW for c in chars]
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
    tokens += [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges


def save_tokenizer(folder: str | Path, max_length: int = MAX_LENGTH) -> CLIPTokenizer:
    """Write vocab.json, merges.txt and tokenizer_config.json; return the loaded tokenizer."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "do_lower_case": True,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return CLIPTokenizer.from_pretrained(str(folder))


def vocab_size() -> int:
    """Number of token ids (the text encoder's embedding rows)."""
    return len(build_vocab()[0])
