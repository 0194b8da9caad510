"""Token embeddings from local files, as MXNet's contrib.text.embedding: GloVe, FastText, CustomEmbedding,
CompositeEmbedding; register, create, get_pretrained_file_names.

A file has one token a line followed by its vector, elements split by elem_delim; a line with a 1-element
vector (fastText's "count dim" header) is skipped, a repeated token keeps its first vector. Index 0 is the
unknown token: its vector is the file's, if the file has that token, else init_unknown_vec(shape=vec_len).
Nothing is downloaded: a missing pretrained file is an error that says where to put it.
"""
import io
import os
import warnings

import numpy as np

from ...base import GraphcError, GraphcLoadError, data_dir as _data_dir
from ...ndarray.ndarray import NDArray
from . import vocab
from .vocab import UNKNOWN_IDX, VocabularyError


class EmbeddingFileError(GraphcLoadError, AssertionError):
    """A token embedding file that is missing or malformed (MXNet asserts these, hence AssertionError too)."""


_REGISTRY = {}


def register(klass):
    """Make a TokenEmbedding subclass creatable by its lowercase name."""
    _REGISTRY[klass.__name__.lower()] = klass
    return klass


def create(embedding_name, **kwargs):
    """A token embedding by name ('glove', 'fasttext', ...), with its constructor's arguments."""
    klass = _REGISTRY.get(embedding_name.lower())
    if klass is None:
        raise VocabularyError(f"unknown token embedding {embedding_name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return klass(**kwargs)


def get_pretrained_file_names(embedding_name=None):
    """The pretrained file names an embedding knows (a dict of all of them when embedding_name is None)."""
    if embedding_name is None:
        return {n: list(k.pretrained_file_names) for n, k in _REGISTRY.items() if hasattr(k, 'pretrained_file_names')}
    klass = _REGISTRY.get(embedding_name.lower())
    if klass is None or not hasattr(klass, 'pretrained_file_names'):
        raise VocabularyError(f"no pretrained files are known for embedding {embedding_name!r}; known: "
                              f"{', '.join(n for n, k in _REGISTRY.items() if hasattr(k, 'pretrained_file_names'))}")
    return list(klass.pretrained_file_names)


def _zeros(shape):
    return NDArray(np.zeros(shape, np.float32))


class TokenEmbedding(vocab.Vocabulary):
    """Base class: a Vocabulary whose tokens have vectors (idx_to_vec, an NDArray (len, vec_len))."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._vec_len, self._idx_to_vec = None, None

    vec_len = property(lambda self: self._vec_len)
    idx_to_vec = property(lambda self: self._idx_to_vec)

    def _load_embedding(self, path, elem_delim, init_unknown_vec, encoding='utf8'):
        path = os.path.expanduser(path)
        if not os.path.isfile(path):
            raise EmbeddingFileError(f"{path}: no such token embedding file")
        rows, seen, unknown_vec, vec_len = [], set(self._idx_to_token), None, None
        with io.open(path, 'r', encoding=encoding) as f:
            for n, line in enumerate(f, 1):
                elems = line.rstrip().split(elem_delim)
                if len(elems) < 2:
                    raise EmbeddingFileError(f"{path}: line {n}: expected a token and its vector, got {line.rstrip()!r}")
                token = elems[0]
                try:
                    vec = [float(x) for x in elems[1:]]
                except ValueError:
                    raise EmbeddingFileError(f"{path}: line {n}: the vector of {token!r} is not numbers") from None
                if token == self._unknown_token and unknown_vec is None:
                    unknown_vec = vec
                elif token in seen:
                    warnings.warn(f"{path}: line {n}: token {token!r} was loaded before; this duplicate is skipped")
                elif len(vec) == 1:
                    warnings.warn(f"{path}: line {n}: token {token!r} with a 1-dimensional vector is likely a "
                                  "header and is skipped")
                else:
                    if vec_len is None:
                        vec_len = len(vec)
                    elif len(vec) != vec_len:
                        raise EmbeddingFileError(f"{path}: line {n}: token {token!r} has {len(vec)} dimensions, the "
                                              f"tokens before it {vec_len}")
                    rows.append(vec)
                    self._idx_to_token.append(token)
                    self._token_to_idx[token] = len(self._idx_to_token) - 1
                    seen.add(token)
        if vec_len is None:
            raise EmbeddingFileError(f"{path}: no token vectors in the file")
        special = len(self._idx_to_token) - len(rows)  # the unknown and the reserved tokens: zeros for now
        vecs = np.zeros((len(self._idx_to_token), vec_len), np.float32)
        vecs[special:] = rows
        vecs[UNKNOWN_IDX] = unknown_vec if unknown_vec is not None else _np(init_unknown_vec(shape=vec_len))
        self._vec_len, self._idx_to_vec = vec_len, NDArray(vecs)

    def _set_idx_to_vec_by_embeddings(self, token_embeddings, vocab_len, vocab_idx_to_token):
        cols = []
        for emb in token_embeddings:
            v = np.zeros((vocab_len, emb.vec_len), np.float32)
            v[0] = _np(emb.idx_to_vec)[UNKNOWN_IDX]
            if vocab_len > 1:
                v[1:] = _np(emb.get_vecs_by_tokens(list(vocab_idx_to_token[1:])))
            cols.append(v)
        self._vec_len = sum(e.vec_len for e in token_embeddings)
        self._idx_to_vec = NDArray(np.concatenate(cols, axis=1))

    def _index_tokens_from_vocabulary(self, vocabulary):
        self._token_to_idx = dict(vocabulary.token_to_idx)
        self._idx_to_token = list(vocabulary.idx_to_token)
        self._unknown_token = vocabulary.unknown_token
        self._reserved_tokens = None if vocabulary.reserved_tokens is None else list(vocabulary.reserved_tokens)

    def _build_embedding_for_vocabulary(self, vocabulary):
        if vocabulary is None:
            return
        if not isinstance(vocabulary, vocab.Vocabulary):
            raise VocabularyError("vocabulary must be a contrib.text.vocab.Vocabulary")
        self._set_idx_to_vec_by_embeddings([self], len(vocabulary), vocabulary.idx_to_token)
        self._index_tokens_from_vocabulary(vocabulary)

    def get_vecs_by_tokens(self, tokens, lower_case_backup=False):
        """The vector of a token (1-D), or of a list of tokens (2-D); unknown tokens get the unknown vector.
        lower_case_backup: look a token up lower-cased when it is not found as it is."""
        one = not isinstance(tokens, list)
        toks = [tokens] if one else tokens
        t2i = self._token_to_idx
        idx = [t2i[t] if t in t2i else t2i.get(t.lower(), UNKNOWN_IDX) if lower_case_backup else UNKNOWN_IDX
               for t in toks]
        vecs = _np(self._idx_to_vec)[idx]
        return NDArray(vecs[0] if one else vecs)

    def update_token_vectors(self, tokens, new_vectors):
        """Replace the vectors of known tokens (new_vectors: 1-D for one token, else (len(tokens), vec_len))."""
        if self._idx_to_vec is None:
            raise GraphcError("update_token_vectors: this embedding has no vectors yet")
        toks = tokens if isinstance(tokens, list) else [tokens]
        new = _np(new_vectors)
        if new.ndim == 1 and len(toks) == 1:
            new = new[None]
        if new.shape != (len(toks), self._vec_len):
            raise VocabularyError(f"update_token_vectors: new_vectors of shape {new.shape} for {len(toks)} tokens of "
                                  f"{self._vec_len} dimensions")
        for t in toks:
            if t not in self._token_to_idx:
                raise VocabularyError(f"Token {t} is unknown. To update the embedding vector for an unknown token, "
                                      f"please specify it explicitly as the `unknown_token` {self._idx_to_token[0]} "
                                      "in `tokens`. This is to avoid unintended updates.")
        vecs = _np(self._idx_to_vec).copy()
        vecs[[self._token_to_idx[t] for t in toks]] = new
        self._idx_to_vec = NDArray(vecs)

    def __contains__(self, token):
        return token in self._token_to_idx


def _np(a):
    return a.asnumpy() if isinstance(a, NDArray) else np.asarray(a, np.float32)


class _Pretrained(TokenEmbedding):
    pretrained_file_names = ()
    _source = ''

    def __init__(self, pretrained_file_name, embedding_root, init_unknown_vec, vocabulary, **kwargs):
        super().__init__(**kwargs)
        folder = os.path.join(os.path.expanduser(embedding_root), type(self).__name__.lower())
        path = os.path.join(folder, pretrained_file_name)
        if not os.path.isfile(path):
            raise GraphcError(f"{type(self).__name__}: {path} not found. graphc does not download embeddings: get "
                              f"{pretrained_file_name} from {self._source} (unpack it if it comes zipped) and put it "
                              f"in {folder}, or pass embedding_root=<the folder above {type(self).__name__.lower()}/>")
        self._load_embedding(path, ' ', init_unknown_vec)
        self._build_embedding_for_vocabulary(vocabulary)


@register
class GloVe(_Pretrained):
    """Stanford's GloVe vectors, read from embedding_root/glove/<pretrained_file_name>."""
    pretrained_file_names = ('glove.42B.300d.txt', 'glove.6B.50d.txt', 'glove.6B.100d.txt', 'glove.6B.200d.txt',
                             'glove.6B.300d.txt', 'glove.840B.300d.txt', 'glove.twitter.27B.25d.txt',
                             'glove.twitter.27B.50d.txt', 'glove.twitter.27B.100d.txt', 'glove.twitter.27B.200d.txt')
    _source = 'https://nlp.stanford.edu/projects/glove/'

    def __init__(self, pretrained_file_name='glove.840B.300d.txt',
                 embedding_root=os.path.join(_data_dir(), 'embeddings'), init_unknown_vec=_zeros, vocabulary=None,
                 **kwargs):
        super().__init__(pretrained_file_name, embedding_root, init_unknown_vec, vocabulary, **kwargs)


@register
class FastText(_Pretrained):
    """Facebook's fastText vectors (.vec text files), read from embedding_root/fasttext/<pretrained_file_name>."""
    pretrained_file_names = ('wiki.simple.vec', 'wiki.en.vec', 'crawl-300d-2M.vec', 'wiki-news-300d-1M.vec',
                             'wiki-news-300d-1M-subword.vec')
    _source = 'https://fasttext.cc/docs/en/pretrained-vectors.html'

    def __init__(self, pretrained_file_name='wiki.simple.vec',
                 embedding_root=os.path.join(_data_dir(), 'embeddings'), init_unknown_vec=_zeros, vocabulary=None,
                 **kwargs):
        super().__init__(pretrained_file_name, embedding_root, init_unknown_vec, vocabulary, **kwargs)


class CustomEmbedding(TokenEmbedding):
    """Vectors from any local file in the token-and-vector text format."""

    def __init__(self, pretrained_file_path, elem_delim=' ', encoding='utf8', init_unknown_vec=_zeros,
                 vocabulary=None, **kwargs):
        super().__init__(**kwargs)
        self._load_embedding(pretrained_file_path, elem_delim, init_unknown_vec, encoding)
        self._build_embedding_for_vocabulary(vocabulary)


class CompositeEmbedding(TokenEmbedding):
    """The vocabulary's tokens with the vectors of several embeddings side by side."""

    def __init__(self, vocabulary, token_embeddings):
        if not isinstance(vocabulary, vocab.Vocabulary):
            raise VocabularyError("CompositeEmbedding: vocabulary must be a contrib.text.vocab.Vocabulary")
        embs = token_embeddings if isinstance(token_embeddings, list) else [token_embeddings]
        if not all(isinstance(e, TokenEmbedding) for e in embs):
            raise VocabularyError("CompositeEmbedding: token_embeddings must be TokenEmbeddings")
        super().__init__()
        self._index_tokens_from_vocabulary(vocabulary)
        self._set_idx_to_vec_by_embeddings(embs, len(vocabulary), vocabulary.idx_to_token)
