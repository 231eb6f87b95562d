"""keras_cool.models: BERT in the bert4keras spirit.

`build_bert` makes a Functional Keras model from a `bert_config.json`;
`load_bert_weights` loads Google's original TF1 checkpoints or HuggingFace
safetensors into it; `BertTokenizer` encodes texts from a `vocab.txt`.
"""

from keras_cool.models.bert_config import load_bert_config
from keras_cool.models.bert_model import build_bert
from keras_cool.models.bert_tokenizer import BertTokenizer
from keras_cool.models.bert_weights import load_bert_weights
from keras_cool.models.bert_weights import read_bert_weights

__all__ = [
    "BertTokenizer",
    "build_bert",
    "load_bert_config",
    "load_bert_weights",
    "read_bert_weights",
]
