# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. The tokenizer: from text to ids
#
# DeBERTa-v3 cuts text into pieces with a sentencepiece **unigram** model: a vocabulary of 128000
# pieces $x$, each with a log-probability $s(x) = \log p(x)$. Of all the ways to cut a (normalized)
# text into vocabulary pieces $x_1 \dots x_T$, the tokenizer picks the most probable one,
#
# $$\hat{x} = \arg\max_{x_1 \cdots x_T = \text{text}} \sum_{t=1}^{T} s(x_t),$$
#
# found by Viterbi over the lattice of pieces: with $\beta[e]$ the best score of the first $e$ characters,
# and $a$ the start of the last piece (an edge $a \to e$ of the lattice),
#
# $$\beta[0] = 0, \qquad \beta[e] = \max_{a < e,\ \text{text}[a:e] \in V} \big(\beta[a] + s(\text{text}[a:e])\big).$$
#
# (Notation, here and in every chapter: $s(x)$ is a piece's score; $V$ the vocabulary; $N$ the length of
# a sequence, $B$ the batch size, $D$ the hidden width, $d$ a head's width; $L$ the number of layers, numbered $0 \dots L-1$, so the last
# layer is layer $L-1$: $h_0$ the embeddings, $h_{\ell+1} = \operatorname{layer}_\ell(h_\ell)$, $h_L$ the last output;
# the relative-position table is $R$, the absolute position table $W_\text{pos}$, and $\delta_{\max}$ the largest
# relative distance the log buckets are laid out for.)
#
# Two files implement it: `minideberta/tokenizer/unigram.py` writes the whole algorithm out in Python
# (for reading), and `minideberta/tokenizer/deberta_tokenizer.py` calls the C++ sentencepiece (for speed),
# adds DeBERTa's special tokens, truncation and windows. This notebook checks both against sentencepiece
# on the official v3 vocabulary committed in `weights/deberta-v3-tokenizer/`.

# %%
import itertools
import unicodedata

import matplotlib.pyplot as plt
import numpy as np
import sentencepiece

from minideberta import DebertaV2Tokenizer
from minideberta.apps import course
from minideberta.tokenizer.unigram import BYTE, SPACE, Unigram

spm_file = course.VOCABULARY / "spm.model"
unigram = Unigram.from_file(spm_file)                                       # the from-scratch reader
reference = sentencepiece.SentencePieceProcessor(model_file=str(spm_file))    # the C++ reference
tokenizer = DebertaV2Tokenizer.from_pretrained(course.VOCABULARY)
print(len(unigram.model.pieces), "pieces; normalizer:", unigram.model.normalizer_name,
      "; byte fallback:", unigram.model.byte_fallback)
assert len(unigram.model.pieces) == reference.get_piece_size() == 128000
assert unigram.model.normalizer_name == "nmt_nfkc" and unigram.model.byte_fallback

# %% [markdown]
# ## 1. Normalization: nmt_nfkc, not NFC
#
# Before segmenting, sentencepiece rewrites the text with the character map stored in the model,
# `nmt_nfkc`: Unicode NFKC *compatibility* folding (the ligature "ﬁ" becomes "fi", full-width "Ｆ"
# becomes "F", "…" becomes "...", "²" becomes "2"), then its whitespace rules: spaces squeezed, a
# space in front of the text, and every space written "▁" (U+2581). transformers 5 rebuilds this
# tokenizer with NFC instead, which composes accents but folds none of these; Microsoft trained with
# sentencepiece's own rule, which is what minideberta follows.

# %%
text = "ﬁne Ｆｕｌｌ-width… x²   spaces"
ours = unigram.normalizer.normalize(text)
nfc = unicodedata.normalize("NFC", text)
print("text:      ", repr(text))
print("nmt_nfkc:  ", repr(ours))
print("NFC:       ", repr(nfc))
assert ours == SPACE + " ".join(unicodedata.normalize("NFKC", text).split()).replace(" ", SPACE)
assert nfc == text                             # NFC changes none of these characters
assert tokenizer.tokenize(text) == reference.encode(text, out_type=str) == unigram.encode_as_pieces(text)
assert tokenizer.encode("ﬁne", add_special_tokens=False) == tokenizer.encode("fine", add_special_tokens=False)

# %% [markdown]
# What a tokenizer that normalizes with NFC and has no byte fallback would make of the same text: the
# vocabulary was built from NFKC-folded text, so "ﬁ", the full-width letters, "…" and "²" are no pieces
# at all, and each becomes `[UNK]` (id 3): seven `[UNK]` for six different characters the model can no
# longer tell apart.

# %%
nfc_pieces = unigram.segment(SPACE + SPACE.join(nfc.split()))      # the segmenter alone, on NFC text
print([piece if i != unigram.unk_id else "[UNK]" for piece, i in nfc_pieces])
unknown = [piece for piece, i in nfc_pieces if i == unigram.unk_id]
assert unknown == ["ﬁ", "Ｆ", "ｕ", "ｌ", "ｌ", "…", "²"] and len(set(unknown)) == 6
assert unigram.unk_id == tokenizer.unk_token_id == 3
assert tokenizer.unk_token_id not in tokenizer.encode(text)        # sentencepiece's own way: no [UNK]

# %% [markdown]
# ## 2. Byte fallback
#
# A character that no piece covers would be `[UNK]`. The v3 model has *byte fallback* instead: 256
# pieces `<0x00>` ... `<0xFF>`, and an unknown character is spelled as its UTF-8 bytes, so that nothing
# is lost and `decode` gives the text back. The Egyptian hieroglyph 𓀀 (U+13000) takes 4 bytes:

# %%
glyph = "𓀀"
pieces = tokenizer.tokenize(glyph)
print(pieces, "<-", [f"0x{b:02X}" for b in glyph.encode("utf-8")])
assert pieces == reference.encode(glyph, out_type=str) == unigram.encode_as_pieces(glyph)
assert pieces[1:] == [f"<0x{b:02X}>" for b in glyph.encode("utf-8")] and len(pieces[1:]) == 4
assert tokenizer.decode(tokenizer.encode(glyph, add_special_tokens=False)) == glyph
assert tokenizer.unk_token_id not in tokenizer.encode(glyph)
assert sum(piece.type == BYTE for piece in unigram.model.pieces) == 256

# %% [markdown]
# ## 3. The lattice of one word and its Viterbi path
#
# Every substring of "▁hieroglyph" that is a piece of the vocabulary is an edge of the lattice, from
# its first character to the one after its last, weighted by the piece's score. `Unigram.segment`
# runs the recursion above; here its choice is drawn over all the edges, and checked against the
# naive way: enumerate *every* path through the lattice and take the best sum.

# %%
word = SPACE + "hieroglyph"
edges = [(a, b, word[a:b], float(unigram.scores[unigram.vocab[word[a:b]]]))
         for a in range(len(word)) for b in range(a + 1, len(word) + 1) if word[a:b] in unigram.vocab]
best_path = unigram.segment(word)                                   # [(piece, id), ...]
print(len(edges), "edges; Viterbi path:", [piece for piece, _ in best_path])


def all_paths(start):
    """Every segmentation of word[start:] into vocabulary pieces (the naive search)."""
    if start == len(word):
        return [[]]
    return [[(a, b, piece, score)] + rest for a, b, piece, score in edges if a == start for rest in all_paths(b)]


paths = all_paths(0)
naive = max(paths, key=lambda path: sum(score for *_, score in path))
print(len(paths), "paths through the lattice; the best by enumeration:", [piece for _, _, piece, _ in naive])
assert [piece for _, _, piece, _ in naive] == [piece for piece, _ in best_path] == tokenizer.tokenize("hieroglyph")

fig, ax = plt.subplots(figsize=(10, 4.5))
levels = {}
chosen = {(piece, a) for a, _, piece, _ in naive}
lo, hi = min(e[3] for e in edges), max(e[3] for e in edges)
for a, b, piece, score in sorted(edges, key=lambda e: (e[1] - e[0], e[0])):
    level = next(lv for lv in itertools.count() if all(b <= x or a >= y for x, y in levels.get(lv, [])))
    levels.setdefault(level, []).append((a, b))
    on_path = (piece, a) in chosen
    ax.barh(level, b - a, left=a, height=0.8, color=plt.cm.viridis((score - lo) / (hi - lo)),
            edgecolor="red" if on_path else "white", linewidth=3 if on_path else 0.5)
    ax.text((a + b) / 2, level, f"{piece}\n{score:.1f}", ha="center", va="center", fontsize=7,
            color="white" if (score - lo) / (hi - lo) < 0.5 else "black")
ax.set_xticks(np.arange(len(word)) + 0.5, list(word))
ax.set_yticks([])
ax.set_xlim(0, len(word))
ax.set_title("every vocabulary piece inside the word (colour: its log-probability); red: the Viterbi path")
fig.colorbar(plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(lo, hi)), ax=ax, label="score")
plt.show()

# %% [markdown]
# ## 4. Exact to sentencepiece
#
# The same ids as the C++ library on a few harder texts: accents written as combining characters,
# Chinese, emoji, runs of spaces, a lone combining mark.

# %%
texts = ["cafe\u0301 naïve", "深度学习很有趣", "emoji 🤗🎉 ok", "  two   spaces ", "\u0301", "DeBERTa-v3's tokenizer"]
for t in texts:
    ids = tokenizer.encode(t, add_special_tokens=False)
    print(f"{t!r:28} {tokenizer.tokenize(t)}")
    assert ids == reference.encode(t) == unigram.encode(t)

# %% [markdown]
# ## 5. Special tokens, token types, truncation and stride windows
#
# DeBERTa lays out one text as `[CLS] A [SEP]` and a pair as `[CLS] A [SEP] B [SEP]`, with token
# types 0 for the first part (its `[CLS]` and `[SEP]` included) and 1 for the second. `[PAD]`,
# `[CLS]`, `[SEP]`, `[UNK]` are pieces 0 to 3 of the sentencepiece model; `[MASK]` is added after the
# last piece, id 128000.

# %%
pair = tokenizer("A man plays a guitar.", "Someone makes music.")
print(list(zip(tokenizer.convert_ids_to_tokens(pair["input_ids"]), pair["token_type_ids"])))
a = tokenizer.encode("A man plays a guitar.", add_special_tokens=False)
b = tokenizer.encode("Someone makes music.", add_special_tokens=False)
assert pair["input_ids"] == [1] + a + [2] + b + [2]
assert pair["token_type_ids"] == [0] * (len(a) + 2) + [1] * (len(b) + 1)
assert [tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id] == [0, 1, 2, 3]
assert tokenizer.mask_token_id == 128000 and tokenizer.tokenize("Paris is the [MASK].")[3] == "[MASK]"

# %% [markdown]
# A text longer than `max_length` is cut. With `return_overflowing_tokens=True` nothing is dropped:
# the text is covered by windows of `max_length - 2` tokens (room for `[CLS]` and `[SEP]`) that start
# `max_length - 2 - stride` tokens apart, so that neighbours share `stride` tokens, and the last one
# reaches the end (question answering over a long context reads every window).

# %%
long_text = ("Ada Lovelace was an English mathematician and writer, chiefly known for her work on "
             "Charles Babbage's proposed mechanical general-purpose computer, the Analytical Engine.")
tokens = tokenizer.encode(long_text, add_special_tokens=False)
max_length, stride = 16, 4
rows = tokenizer(long_text, truncation=True, max_length=max_length, stride=stride,
                 return_overflowing_tokens=True)["input_ids"]
width = max_length - 2
starts = [tokens.index(row[1]) if k == 0 else k * (width - stride) for k, row in enumerate(rows)]

fig, ax = plt.subplots(figsize=(10, 2.5))
for k, (row, start) in enumerate(zip(rows, starts)):
    ax.barh(k, len(row) - 2, left=start, height=0.6)
    ax.text(start + 0.2, k, tokenizer.decode(row[1:-1])[:40], va="center", fontsize=7, color="white")
ax.invert_yaxis()
ax.set_xlabel(f"token position in the text ({len(tokens)} tokens)")
ax.set_ylabel("window")
ax.set_title(f"max_length={max_length} (so {width} text tokens a window), stride={stride}")
plt.show()

for k, (row, start) in enumerate(zip(rows, starts)):
    assert row[0] == tokenizer.cls_token_id and row[-1] == tokenizer.sep_token_id and len(row) <= max_length
    assert row[1:-1] == tokens[start:start + width]                  # each window is a stretch of the text
    if k:
        assert rows[k - 1][-1 - stride:-1] == row[1:1 + stride]      # neighbours share `stride` tokens
assert starts[-1] + len(rows[-1]) - 2 == len(tokens)                 # the last window reaches the end

# Without return_overflowing_tokens, truncation keeps the first window and drops the rest.
cut = tokenizer(long_text, truncation=True, max_length=max_length)["input_ids"]
assert cut == rows[0] and len(cut) == max_length

# %% [markdown]
# ## 6. The vocabulary of the model this course runs on
#
# Everything above used Microsoft's vocabulary, the one of the official v3 checkpoints. The chapters that
# follow run on the course's model (`course.course_model()`), and a model comes with its own vocabulary: its
# `spm.model` sits in its folder, and its word table has one row per piece. minideberta's own pre-trained
# pair was trained with a sentencepiece unigram model of its own, built the same way (nmt_nfkc, byte
# fallback, the same four special pieces first and `[MASK]` added last) but much smaller, from a smaller
# corpus: more words take several pieces, and a word that is one piece for Microsoft may be two here. The
# numbers below are read from the tokenizer, whatever model is installed.

# %%
model_folder = course.model_folder("masked-lm")
course_tokenizer = course.course_model()[1]
own = Unigram.from_file(model_folder / "spm.model") if (model_folder / "spm.model").is_file() else unigram
own_pieces = {piece.text for piece in own.model.pieces}
shared = own_pieces & {piece.text for piece in unigram.model.pieces}
print(course.describe())
print(f"the course model's vocabulary: {len(course_tokenizer)} tokens ({len(own.model.pieces)} pieces + [MASK]); "
      f"Microsoft's: {len(tokenizer)}; pieces in both: {len(shared)}")
sentence = "The tokenizer cuts a sentence into pieces."
for name, tok in (("Microsoft's", tokenizer), ("the course model's", course_tokenizer)):
    print(f"{name:20} {tok.tokenize(sentence)}")

assert own.model.normalizer_name == "nmt_nfkc" and own.model.byte_fallback
assert sum(piece.type == BYTE for piece in own.model.pieces) == 256       # byte fallback: nothing becomes [UNK]
assert [course_tokenizer.pad_token_id, course_tokenizer.cls_token_id, course_tokenizer.sep_token_id,
        course_tokenizer.unk_token_id] == [0, 1, 2, 3]                    # the same special pieces, the same ids
assert course_tokenizer.mask_token_id == len(own.model.pieces) == len(course_tokenizer) - 1   # [MASK] added last
assert course.course_model()[0].config.vocab_size >= len(course_tokenizer)  # a row of the word table per token
assert course_tokenizer.unk_token_id not in course_tokenizer.encode(text + glyph)

# %% [markdown]
# ## Questions and exercises
#
# 1. Write the Viterbi recursion yourself (a list `best`, a list `back`) and run it on the edges of
#    section 3. Why must a candidate score *strictly* higher to replace an earlier one? (Read the
#    docstring of `Unigram.segment`: which of two equal paths does sentencepiece keep?)
# 2. Which characters does nmt_nfkc change that NFC keeps? Try "ｶﾀｶﾅ", "①", "ℌ", "\u00a0" and check
#    your guess with `unigram.normalizer.normalize`.
# 3. Section 6: which common English words are one piece for Microsoft's vocabulary but several for the
#    course model's? Why does that matter for a masked-LM example that masks one position
#    (`course.one_piece`)?
