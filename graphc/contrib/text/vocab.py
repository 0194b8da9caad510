"""Vocabulary, as MXNet's contrib.text.vocab: tokens <-> indices, index 0 the unknown token."""
import collections

from ...base import GraphcError

UNKNOWN_IDX = 0


class VocabularyError(GraphcError, ValueError, AssertionError):
    """A vocabulary argument or index that is not valid; MXNet raises ValueError or AssertionError there, so
    both catch it."""


class Vocabulary:
    """Indexes the tokens of a Counter: the unknown token (index 0), then reserved_tokens, then the counted
    tokens by decreasing frequency (ties alphabetically), those with count >= min_freq, at most most_freq_count."""

    def __init__(self, counter=None, most_freq_count=None, min_freq=1, unknown_token='<unk>', reserved_tokens=None):
        if min_freq <= 0:
            raise VocabularyError("Vocabulary: min_freq must be set to a positive value")
        if reserved_tokens is not None:
            if unknown_token in reserved_tokens:
                raise VocabularyError("Vocabulary: reserved_tokens cannot contain unknown_token")
            if len(set(reserved_tokens)) != len(reserved_tokens):
                raise VocabularyError("Vocabulary: reserved_tokens cannot contain duplicate reserved tokens")
        self._index_unknown_and_reserved_tokens(unknown_token, reserved_tokens)
        if counter is not None:
            self._index_counter_keys(counter, unknown_token, reserved_tokens, most_freq_count, min_freq)

    def _index_unknown_and_reserved_tokens(self, unknown_token, reserved_tokens):
        self._unknown_token = unknown_token
        self._idx_to_token = [unknown_token]
        self._reserved_tokens = None if reserved_tokens is None else list(reserved_tokens)
        self._idx_to_token.extend(reserved_tokens or [])
        self._token_to_idx = {t: i for i, t in enumerate(self._idx_to_token)}

    def _index_counter_keys(self, counter, unknown_token, reserved_tokens, most_freq_count, min_freq):
        if not isinstance(counter, collections.Counter):
            raise VocabularyError("Vocabulary: counter must be an instance of collections.Counter")
        special = set(reserved_tokens or []) | {unknown_token}
        freqs = sorted(counter.items(), key=lambda x: x[0])
        freqs.sort(key=lambda x: x[1], reverse=True)
        cap = len(special) + (len(counter) if most_freq_count is None else most_freq_count)
        for token, freq in freqs:
            if freq < min_freq or len(self._idx_to_token) == cap:
                break
            if token not in special:
                self._idx_to_token.append(token)
                self._token_to_idx[token] = len(self._idx_to_token) - 1

    def __len__(self):
        return len(self._idx_to_token)

    def __contains__(self, token):
        return token in self._token_to_idx

    token_to_idx = property(lambda self: self._token_to_idx)
    idx_to_token = property(lambda self: self._idx_to_token)
    unknown_token = property(lambda self: self._unknown_token)
    reserved_tokens = property(lambda self: self._reserved_tokens)

    def to_indices(self, tokens):
        """The index of a token, or a list of indices for a list of tokens (unknown ones: 0)."""
        if isinstance(tokens, str):
            return self._token_to_idx.get(tokens, UNKNOWN_IDX)
        return [self._token_to_idx.get(t, UNKNOWN_IDX) for t in tokens]

    def to_tokens(self, indices):
        """The token at an index, or a list of tokens for a list of indices."""
        one = not isinstance(indices, (list, tuple))
        out = []
        for i in [indices] if one else indices:
            if not isinstance(i, int) or not 0 <= i < len(self._idx_to_token):
                raise VocabularyError(f"Token index {i} in the provided `indices` is invalid.")
            out.append(self._idx_to_token[i])
        return out[0] if one else out
