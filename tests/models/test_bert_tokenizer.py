import json

import numpy as np
import pytest

from keras_cool.models import BertTokenizer
from tests.models.conftest import FIXTURE

VOCAB = FIXTURE / "vocab.txt"
TEXTS = [
    tuple(pair) for pair in json.loads((FIXTURE / "texts.json").read_text())
]


@pytest.mark.parametrize("lowercase", [True, False], ids=["uncased", "cased"])
def test_matches_transformers_bert_tokenizer(lowercase, reference):
    tokenizer = BertTokenizer(VOCAB, lowercase=lowercase)
    tag = "uncased" if lowercase else "cased"
    for k, (first, second) in enumerate(TEXTS):
        want = reference[f"tok_{tag}_{k}_ids"]
        # transformers padded to 20 without truncating (one text is 21).
        ids, segments = tokenizer.encode(first, second, length=len(want))
        np.testing.assert_array_equal(ids, want)
        np.testing.assert_array_equal(
            segments, reference[f"tok_{tag}_{k}_segments"]
        )


def test_batch_with_truncation_matches_the_fixture_inputs(reference):
    """The fixture's model inputs came from transformers at length 16."""
    tokenizer = BertTokenizer(VOCAB)
    firsts = [first for first, _ in TEXTS[:3]]
    seconds = [second or "" for _, second in TEXTS[:3]]
    ids, segments = tokenizer.encode_batch(firsts, seconds, length=16)
    # Text 1 has no pair in the fixture: encode it alone.
    single = tokenizer.encode(TEXTS[1][0], length=16)
    ids[1], segments[1] = single
    np.testing.assert_array_equal(ids, reference["token_ids"])
    np.testing.assert_array_equal(segments, reference["segment_ids"])
    assert ids.dtype == np.int32 and ids.shape == (3, 16)


def test_tokens_pieces_and_decode():
    tokenizer = BertTokenizer(VOCAB)
    assert tokenizer.tokenize("The dogs played") == [
        "the",
        "dog",
        "##s",
        "play",
        "##ed",
    ]
    assert BertTokenizer(VOCAB, lowercase=False).tokenize("The dog") == [
        "The",
        "dog",
    ]
    ids, segments = tokenizer.encode("a cat", "a dog")
    assert list(segments) == [0, 0, 0, 0, 1, 1, 1]
    assert ids[0] == tokenizer.cls_id and ids[-1] == tokenizer.sep_id
    assert tokenizer.decode(ids) == "a cat a dog"
    assert tokenizer.vocabulary_size == 97
    assert tokenizer.id_to_token(tokenizer.token_to_id("cat")) == "cat"
    batch, _ = tokenizer.encode_batch(["a", "a big red dog"])
    assert batch.shape == (2, 6) and batch[0, -1] == tokenizer.pad_id


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        BertTokenizer(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        BertTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"])
    tokenizer = BertTokenizer(VOCAB)
    with pytest.raises(ValueError, match=r"length must be >= 2 .*got 1"):
        tokenizer.encode("a", length=1)
    with pytest.raises(ValueError, match=r"length must be >= 3 for text pairs"):
        tokenizer.encode("a", "b", length=2)
    with pytest.raises(ValueError, match="length must be an int"):
        tokenizer.encode("a", length=2.0)
    with pytest.raises(ValueError, match="2 first texts and 1"):
        tokenizer.encode_batch(["a", "b"], ["c"])


def test_length_two_gives_cls_sep_as_transformers_does():
    """transformers' BertTokenizerFast(text, max_length=2, truncation=True)
    gives `[CLS] [SEP]`: the whole text is truncated away."""
    tokenizer = BertTokenizer(VOCAB)
    ids, segments = tokenizer.encode("the cat sat on the mat", length=2)
    assert list(ids) == [tokenizer.cls_id, tokenizer.sep_id]
    assert list(segments) == [0, 0]
    batch, _ = tokenizer.encode_batch(["the cat", ""], length=np.int64(2))
    assert batch.tolist() == [[tokenizer.cls_id, tokenizer.sep_id]] * 2
    ids, segments = tokenizer.encode("the cat", "a dog", length=3)
    assert list(ids) == [tokenizer.cls_id, tokenizer.sep_id, tokenizer.sep_id]
    assert list(segments) == [0, 0, 1]
