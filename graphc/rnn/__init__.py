"""MXNet's legacy symbolic RNN API (`mx.rnn`), replaced in MXNet 1.x itself by gluon.rnn.

graphc has `encode_sentences`; every other name raises an error (an AttributeError, so hasattr() works)
naming its replacement: gluon.rnn's cells compose on Symbols the same way (cell.unroll(T, [sym.var(...), ...])
gives MXNet's graph and names), and the fused layers replace FusedRNNCell.
"""
from ..base import GraphcError

__all__ = ['encode_sentences']

_REPLACEMENT = {
    'RNNCell': 'gluon.rnn.RNNCell', 'LSTMCell': 'gluon.rnn.LSTMCell', 'GRUCell': 'gluon.rnn.GRUCell',
    'SequentialRNNCell': 'gluon.rnn.SequentialRNNCell', 'BidirectionalCell': 'gluon.rnn.BidirectionalCell',
    'DropoutCell': 'gluon.rnn.DropoutCell', 'ZoneoutCell': 'gluon.rnn.ZoneoutCell',
    'ResidualCell': 'gluon.rnn.ResidualCell', 'ModifierCell': 'gluon.rnn.ModifierCell',
    'BaseRNNCell': 'gluon.rnn.RecurrentCell', 'FusedRNNCell': 'gluon.rnn.RNN / LSTM / GRU (the fused layers)',
    'ConvRNNCell': None, 'ConvLSTMCell': None, 'ConvGRUCell': None, 'RNNParams': 'gluon.ParameterDict',
    'BucketSentenceIter': 'gluon.data.DataLoader over your bucketed sequences',
    'save_rnn_checkpoint': 'HybridBlock.export / save_parameters', 'load_rnn_checkpoint': 'SymbolBlock.imports',
    'do_rnn_checkpoint': 'HybridBlock.export in your training loop',
}


class LegacyRNNError(GraphcError, AttributeError):
    """A name of MXNet's legacy mx.rnn module that graphc does not have."""


def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)
    alt = _REPLACEMENT.get(name, 'gluon.rnn')
    use = f"use mxnet.{alt} instead" if alt else "there is no replacement in graphc yet"
    raise LegacyRNNError(f"mx.rnn.{name}: MXNet's legacy symbolic RNN API (mx.rnn) is not in graphc; {use} "
                         "(gluon.rnn cells also compose on Symbols: cell.unroll(length, [mx.sym.var('t0'), ...]))")


def encode_sentences(sentences, vocab=None, invalid_label=-1, invalid_key='\n', start_label=0, unknown_token=None):
    """Sentences (lists of tokens) as lists of integer ids, and the vocabulary (token -> id), as MXNet's.

    A new vocabulary starts as {invalid_key: invalid_label} and numbers tokens from start_label in order of
    appearance, skipping invalid_label; with a given vocabulary an unknown token is an error unless
    unknown_token is set (it then gets the next free id, and stands for every unknown token)."""
    new = vocab is None
    vocab = {invalid_key: invalid_label} if new else vocab
    # ids for new tokens continue after a given vocabulary's (MXNet restarts at start_label: ids would collide)
    nxt = start_label if new else max([start_label] + [v + 1 for v in vocab.values()])
    coded = []
    for sent in sentences:
        ids = []
        for tok in sent:
            if tok not in vocab:
                if not new and not unknown_token:
                    raise GraphcError(f"encode_sentences: token {tok!r} is not in the vocabulary; pass "
                                      "unknown_token= to map unknown tokens to one id")
                if unknown_token:
                    tok = unknown_token
                if tok not in vocab:
                    if nxt == invalid_label:
                        nxt += 1
                    vocab[tok] = nxt
                    nxt += 1
            ids.append(vocab[tok])
        coded.append(ids)
    return coded, vocab
