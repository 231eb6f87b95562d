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
            'install tokenizers, or pip install "keras-cool[bert]".'
        ) from error
    return BertWordPieceTokenizer(
        vocabulary,
        lowercase=lowercase,
        strip_accents=strip_accents,
        clean_text=True,
        handle_chinese_chars=True,
    )


class BertTokenizer:
    """BERT's WordPiece tokenizer, cased or uncased, from a `vocab.txt`.

    Built on the HuggingFace `tokenizers` package (its Rust
    `BertWordPieceTokenizer`: BERT's normalizer, pre-tokenizer and
    WordPiece model), with BERT's template `[CLS] A [SEP] B [SEP]`.
    `encode` gives what `build_bert` models take: token ids and segment
    ids (0 for the first text and its `[CLS]`/`[SEP]`, 1 for the second).
    With a `length`, pairs are truncated longest-first (the longer text
    loses a token at a time) and padded with `[PAD]` (id 0).

    Args:
        vocabulary: path of a `vocab.txt` (one token a line, the id is the
            line number), or a list of tokens in id order.
        lowercase: lowercase the text (uncased checkpoints) or not
            (cased ones).
        strip_accents: strip accents; default: the same as `lowercase`
            (as Google's and HuggingFace's tokenizers do).

    Example:

    ```python
    tokenizer = keras_cool.models.BertTokenizer("vocab.txt")
    token_ids, segment_ids = tokenizer.encode(
        "The cat sat.", "It was happy.", length=32
    )
    ids, segments = tokenizer.encode_batch(["a text", "another"], length=8)
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

    def _encode(self, pairs, length):
        tokenizer = self._tokenizer
        if length is not None:
            if isinstance(length, bool) or int(length) < 3:
                raise ValueError(f"length must be an int >= 3, got {length}.")
            tokenizer.enable_truncation(int(length))
            tokenizer.enable_padding(
                length=int(length), pad_id=self.pad_id, pad_token="[PAD]"
            )
        else:
            tokenizer.no_truncation()
            tokenizer.enable_padding(pad_id=self.pad_id, pad_token="[PAD]")
        try:
            encodings = tokenizer.encode_batch(pairs)
        finally:
            tokenizer.no_truncation()
            tokenizer.no_padding()
        ids = np.array([e.ids for e in encodings], "int32")
        segments = np.array([e.type_ids for e in encodings], "int32")
        return ids, segments

    def encode(self, first, second=None, length=None):
        """Token ids and segment ids of one text or a text pair.

        Args:
            first: the text.
            second: optional second text of a pair.
            length: pad (and truncate) to this length; default: no padding.

        Returns:
            `(token_ids, segment_ids)`, int32 arrays of shape `(length,)`.
        """
        pair = first if second is None else (first, second)
        ids, segments = self._encode([pair], length)
        return ids[0], segments[0]

    def encode_batch(self, firsts, seconds=None, length=None):
        """`encode` for lists of texts; pads to `length` or the longest.

        Returns:
            `(token_ids, segment_ids)`, int32 arrays `(n, length)`.
        """
        firsts = list(firsts)
        if seconds is None:
            pairs = firsts
        else:
            seconds = list(seconds)
            if len(seconds) != len(firsts):
                raise ValueError(
                    f"encode_batch got {len(firsts)} first texts and "
                    f"{len(seconds)} second texts."
                )
            pairs = list(zip(firsts, seconds))
        return self._encode(pairs, length)

    def decode(self, token_ids, skip_special_tokens=True):
        """The text of token ids (WordPiece pieces joined)."""
        ids = [int(i) for i in np.asarray(token_ids).reshape(-1)]
        return self._tokenizer.decode(
            ids, skip_special_tokens=skip_special_tokens
        )
