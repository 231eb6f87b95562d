"""BertTokenizer: WordPiece from a `vocab.txt`, on HF `tokenizers`."""

import os

import numpy as np

__all__ = ["BertTokenizer"]

_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _wordpiece(vocabulary, lowercase, strip_accents):
    try:
        from tokenizers import BertWordPieceTokenizer
    except ImportError as error:
        raise ImportError(
            "BertTokenizer needs the HuggingFace tokenizers package: pip "
            "install tokenizers"
        ) from error
    return BertWordPieceTokenizer(
        vocabulary,
        lowercase=lowercase,
        strip_accents=strip_accents,
        clean_text=True,
        handle_chinese_chars=True,
    )


def _truncate_pair(a, b, budget):
    """Google's `_truncate_seq_pair`: the longer list loses its last token
    (the second on a tie) until both fit in `budget`; in place."""
    while len(a) + (0 if b is None else len(b)) > budget:
        if b is None or len(a) > len(b):
            a.pop()
        else:
            b.pop()


class BertTokenizer:
    """BERT's WordPiece tokenizer, cased or uncased, from a `vocab.txt`.

    Built on the HuggingFace `tokenizers` package (its Rust
    `BertWordPieceTokenizer`: BERT's normalizer, pre-tokenizer and
    WordPiece model), with BERT's template `[CLS] A [SEP] B [SEP]`.
    `encode` gives what `build_bert` models take: token ids and segment
    ids (0 for the first text and its `[CLS]`/`[SEP]`, 1 for the second).
    With a `length`, texts are truncated as Google's `run_classifier.py`
    and transformers' `BertTokenizer` do (the longer text of a pair loses
    its last token, the second on a tie, until the pair fits) and padded
    with `[PAD]` (id 0).

    Args:
        vocabulary: path of a `vocab.txt` (one token a line, the id is the
            line number), or a list of tokens in id order.
        lowercase: lowercase the text (uncased checkpoints) or not
            (cased ones). Defaults to `True`.
        strip_accents: strip accents; `None`: the same as `lowercase` (as
            Google's and HuggingFace's tokenizers do). Defaults to `None`.

    Example:

    ```python
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocabulary += ["the", "cat", "sat", "it", "was", "happy", "."]
    tokenizer = keras_cool.models.BertTokenizer(vocabulary)  # or "vocab.txt"
    token_ids, segment_ids = tokenizer.encode(
        "The cat sat.", "It was happy.", length=12
    )
    token_ids  # [2, 5, 6, 7, 11, 3, 8, 9, 10, 11, 3, 0]
    ids, segments = tokenizer.encode_batch(["the cat", "it sat"], length=6)
    ```

    Reference:
        Wu et al., "Google's Neural Machine Translation System" (2016,
        WordPiece); Su Jianlin, bert4keras `tokenizers.Tokenizer`.
    """

    def __init__(self, vocabulary, lowercase=True, strip_accents=None):
        if isinstance(vocabulary, (str, os.PathLike)):
            path = os.fspath(vocabulary)
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"vocabulary {path!r} is not a file: pass the vocab.txt "
                    "that comes with the checkpoint, or a list of tokens."
                )
            with open(path, encoding="utf-8") as f:
                tokens = [line.rstrip("\n") for line in f]
            while tokens and not tokens[-1]:
                tokens.pop()
        else:
            tokens = list(vocabulary)
        lacking = [t for t in _SPECIAL if t not in tokens]
        if lacking:
            raise ValueError(
                f"The vocabulary lacks BERT's special tokens {lacking}."
            )
        self.vocabulary = tokens
        self.lowercase = bool(lowercase)
        self.strip_accents = strip_accents
        vocab = {token: i for i, token in enumerate(tokens)}
        self._tokenizer = _wordpiece(vocab, self.lowercase, strip_accents)
        self.pad_id = vocab["[PAD]"]
        self.cls_id = vocab["[CLS]"]
        self.sep_id = vocab["[SEP]"]
        self.mask_id = vocab["[MASK]"]
        self.unk_id = vocab["[UNK]"]

    @property
    def vocabulary_size(self):
        return len(self.vocabulary)

    def token_to_id(self, token):
        return self._tokenizer.token_to_id(token)

    def id_to_token(self, index):
        return self.vocabulary[int(index)]

    def tokenize(self, text):
        """The WordPiece tokens of `text`, without `[CLS]`/`[SEP]`."""
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def _pieces(self, texts):
        encodings = self._tokenizer.encode_batch(
            list(texts), add_special_tokens=False
        )
        return [list(e.ids) for e in encodings]

    def _encode(self, firsts, seconds, length):
        if seconds is None:
            seconds = [None] * len(firsts)
        if length is not None:
            pairs = any(s is not None for s in seconds)
            least = 3 if pairs else 2
            if isinstance(length, bool) or not isinstance(
                length, (int, np.integer)
            ):
                raise ValueError(f"length must be an int, got {length!r}.")
            length = int(length)
            if length < least:
                raise ValueError(
                    f"length must be >= {least} "
                    + (
                        "for text pairs ([CLS] [SEP] [SEP])"
                        if pairs
                        else "for single texts ([CLS] [SEP])"
                    )
                    + f", got {length}."
                )
        firsts = self._pieces(firsts)
        pieces = self._pieces(["" if s is None else s for s in seconds])
        seconds = [None if s is None else p for s, p in zip(seconds, pieces)]
        rows, kinds = [], []
        for a, b in zip(firsts, seconds):
            if length is not None:
                _truncate_pair(a, b, length - (2 if b is None else 3))
            ids = [self.cls_id] + a + [self.sep_id]
            segments = [0] * len(ids)
            if b is not None:
                ids += b + [self.sep_id]
                segments += [1] * (len(b) + 1)
            rows.append(ids)
            kinds.append(segments)
        width = length or max(len(r) for r in rows)
        token_ids = np.full((len(rows), width), self.pad_id, "int32")
        segment_ids = np.zeros((len(rows), width), "int32")
        for i, (ids, segments) in enumerate(zip(rows, kinds)):
            token_ids[i, : len(ids)] = ids
            segment_ids[i, : len(ids)] = segments
        return token_ids, segment_ids

    def encode(self, first, second=None, length=None):
        """Token ids and segment ids of one text or a text pair.

        Args:
            first: the text.
            second: optional second text of a pair.
            length: pad (and truncate) to this length: at least 2 for
                one text (`[CLS] [SEP]` when `length=2`, as transformers'
                tokenizers give), 3 for a pair; `None` pads nothing.
                Defaults to `None`.

        Returns:
            `(token_ids, segment_ids)`, int32 arrays of shape `(length,)`.
        """
        ids, segments = self._encode([first], [second], length)
        return ids[0], segments[0]

    def encode_batch(self, firsts, seconds=None, length=None):
        """`encode` for lists of texts; pads to `length` or the longest.

        Returns:
            `(token_ids, segment_ids)`, int32 arrays `(n, length)`.
        """
        firsts = list(firsts)
        if seconds is not None:
            seconds = list(seconds)
            if len(seconds) != len(firsts):
                raise ValueError(
                    f"encode_batch got {len(firsts)} first texts and "
                    f"{len(seconds)} second texts."
                )
        return self._encode(firsts, seconds, length)

    def decode(self, token_ids, skip_special_tokens=True):
        """The text of token ids (WordPiece pieces joined)."""
        ids = [int(i) for i in np.asarray(token_ids).reshape(-1)]
        return self._tokenizer.decode(
            ids, skip_special_tokens=skip_special_tokens
        )
