"""Text fingerprints: normalised words, k-word shingles, 64-bit keys. No text is kept.

Why shingles and not substring search: prompt templates re-flow whitespace, number and
quote the documents they paste, and context assemblers truncate them. A document is
recognised in a prompt when enough of its k-word windows ("shingles") appear there; the
fraction found is the *coverage*. Looking shingles up in a hash table costs the same
whether 10 or 100,000 outputs are registered.

Normalisation (the same on both sides, so it never has to be exact):

* NFKC for non-ASCII text; lower-case;
* JSON/escape sequences (``\\n``, ``\\t``, ``\\"``, ``\\uXXXX``) read as what they mean,
  so a document inside a JSON-encoded payload still matches;
* list markers and citation numbers (``1.``, ``2)``, ``[3]``, ``(4)``) dropped: templates add them;
* every run of non-word characters (punctuation, quotes, ``>``, bullets, newlines) is one
  separator; words are runs of letters/digits.

Keys: each word becomes a 64-bit integer, and a shingle's key is CPython's hash of the
tuple of those integers, read as unsigned 64 bits. By default a word's integer is a keyed
hash, ``blake2b(word, key=K, digest_size=8)`` read little-endian, where ``K`` is the digest
key (:mod:`instrumentors._digest_key`: a per-installation key file, or
``INSTRUMENTORS_DIGEST_KEY``); keyed ids go through a bounded cache
(:data:`WORD_CACHE_MAX` words), so a word already seen costs one dict probe. Without the
key nobody can compute a key from a candidate text, so a short output ("yes", a name, a
rewritten query) cannot be guessed from its digest by hashing a dictionary; processes with
the same key get the same keys. With ``digest_key="off"`` a word's integer is its UTF-8
bytes (little-endian): the historical, unkeyed format, identical in every process and
guessable by anyone. Integer and tuple hashing are not randomised per process (only
str/bytes are), so keys are identical across processes and runs that share the key: that
is what lets a backend rebuild links from span digests (:mod:`.digests`).
:func:`tuple_key` re-implements the same function in Python and is used if the
interpreter's hash ever differs (checked at import, including full 64-bit ids), so the
keys never change.

Short texts (fewer than ``k`` words: a one-line rewritten query, a tool argument) get a
single key: the same tuple hash over all their words. Consumers look such keys up as
whole inputs and, for 3+ words, as n-grams inside longer inputs (see :mod:`.registry`).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import re
import threading
import unicodedata
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .. import _digest_key

MASK = (1 << 64) - 1

#: characters of one input we fingerprint at most (cost is linear; this bounds it).
MAX_INPUT_CHARS = 1_000_000
#: outputs with more distinct shingles keep a deterministic sample of at most this many.
MAX_KEYS_PER_SOURCE = 256
#: shortest n-gram (in words) a short output is searched for inside a longer input.
MIN_EMBEDDED_WORDS = 3

# List markers and citation numbers: 1-3 digits then . ) or ], after a separator (or at
# the start) and not followed by a word character. "1.", "2)", "[3]", "(4)"; not "3.5".
_MARKERS = re.compile(r"(?<![^\W_])\d{1,3}[.)\]](?![^\W_])")
_MARKER_HINT = re.compile(r"\d[.)\]]")
_SEPARATORS = re.compile(r"[\W_]+")
_ESCAPES = re.compile(r"\\(?:u([0-9a-fA-F]{4})|[nrtbf\"'\\/])")
# ASCII fast path: after lower(), every byte that is not [0-9a-z] is a separator. This is
# exactly what the regex path does for ASCII characters, so both paths agree.
_ASCII_SEPARATORS = bytes(c if (48 <= c <= 57 or 97 <= c <= 122) else 32 for c in range(256))
_from_bytes = int.from_bytes
_LITTLE = itertools.repeat("little")
_chain = itertools.chain.from_iterable


def _unescape(match: "re.Match[str]") -> str:
    code = match.group(1)
    return chr(int(code, 16)) if code else " "


def _words(text: str) -> List[bytes]:
    """Normalised words as UTF-8 bytes (see the module docstring for the rules)."""
    if len(text) > MAX_INPUT_CHARS:
        text = text[:MAX_INPUT_CHARS]
    if "\\" in text:
        text = _ESCAPES.sub(_unescape, text)
    if text.isascii():
        lowered = text.lower()
        if _MARKER_HINT.search(lowered):
            lowered = _MARKERS.sub(" ", lowered)
        return lowered.encode("ascii").translate(_ASCII_SEPARATORS).split()
    lowered = unicodedata.normalize("NFKC", text).casefold()
    if _MARKER_HINT.search(lowered):
        lowered = _MARKERS.sub(" ", lowered)
    return _SEPARATORS.sub(" ", lowered).encode("utf-8").split()


def normalise(text: str) -> str:
    """Normalised form of ``text``: lower-case words separated by single spaces.

    Public for tests and for users who want to check why two texts (do not) match.
    """
    return " ".join(word.decode("utf-8") for word in _words(text))


#: keyed word ids cached at most; the cache is emptied when full (a bounded, cheap policy:
#: a working vocabulary refills it at once, and no per-hit bookkeeping is needed).
WORD_CACHE_MAX = 65_536
_WORD_PERSON = b"instr.word.v1"
_blake2b = hashlib.blake2b
# (key, {word bytes: id}, keyed blake2b state to copy); replaced as a whole when the key
# changes. Copying a keyed state skips hashing the key block: half the cost of a miss.
_word_cache: Tuple[Optional[bytes], Dict[bytes, int], object] = (None, {}, None)


def word_ids(text: str) -> List[int]:
    """The normalised words of ``text`` as 64-bit integers: keyed hashes of their UTF-8
    bytes, or (``digest_key="off"``) the bytes themselves, little-endian."""
    secret = _digest_key.key()
    if secret is None:
        return list(map(_from_bytes, _words(text), _LITTLE))
    return keyed_ids(_words(text), secret)


def keyed_ids(words: List[bytes], secret: bytes) -> List[int]:
    """Keyed ids of ``words``. All cached (the usual case): one C-level map of dict look-ups."""
    owner, cache, base = _word_cache
    if owner is not secret:
        cache, base = _cache_for(secret)
    try:
        return list(map(cache.__getitem__, words))
    except KeyError:
        pass
    ids = []
    append = ids.append
    get = cache.get
    for word in words:
        value = get(word)
        if value is None:
            if len(cache) >= WORD_CACHE_MAX:
                cache.clear()
            state = base.copy()
            state.update(word)
            value = cache[word] = _from_bytes(state.digest(), "little")
        append(value)
    return ids


def _cache_for(secret: bytes) -> Tuple[Dict[bytes, int], object]:
    global _word_cache
    owner, cache, base = _word_cache
    if owner != secret:
        cache, base = {}, _blake2b(digest_size=8, key=secret, person=_WORD_PERSON)
    _word_cache = (secret, cache, base)
    return cache, base


def word_cache_size() -> int:
    """Entries in the keyed word-id cache (tests check its bound)."""
    return len(_word_cache[1])


# --- the key function -----------------------------------------------------------------
# CPython >= 3.8 (64-bit) hashes a tuple with an xxHash-style mix of its items' hashes,
# and a non-negative int to ``value mod (2**61 - 1)``. Neither is salted per process.
_MODULUS = (1 << 61) - 1
_XX1 = 11400714785074694791
_XX2 = 14029467366897019727
_XX5 = 2870177450012600261


def _py_tuple_key(ids: Sequence[int]) -> int:
    """Portable re-implementation of ``hash(tuple(ids)) & MASK`` for non-negative ints."""
    acc = _XX5
    for value in ids:
        acc = (acc + (value % _MODULUS) * _XX2) & MASK
        acc = ((acc << 31) | (acc >> 33)) & MASK
        acc = (acc * _XX1) & MASK
    acc = (acc + (len(ids) ^ (_XX5 ^ 3527539))) & MASK
    return 1546275796 if acc == MASK else acc


def _builtin_matches() -> bool:
    samples = [(1, 2, 3), (0,), (2 ** 62 + 12345, 7, 2 ** 200 + 1), tuple(range(40, 45)),
               (MASK, _MODULUS, _MODULUS - 1, 2 ** 63 + 5, 2 ** 61)]  # keyed ids span 64 bits
    try:
        return all((hash(s) & MASK) == _py_tuple_key(s) for s in samples)
    except Exception:  # noqa: BLE001
        return False


FAST_KEYS = _builtin_matches()


def tuple_key(ids: Sequence[int]) -> int:
    """Key of a word-id sequence (a shingle, an n-gram or a whole short text)."""
    if FAST_KEYS:
        return hash(tuple(ids)) & MASK
    return _py_tuple_key(ids)


def ngram_keys(ids: Sequence[int], n: int) -> Iterable[int]:
    """Keys of every ``n``-word window of ``ids`` (nothing if there are fewer words)."""
    if n <= 0 or len(ids) < n:
        return ()
    windows = zip(*[ids[i:] for i in range(n)]) if n > 1 else zip(ids)
    if FAST_KEYS:
        return map(MASK.__and__, map(hash, windows))
    return map(_py_tuple_key, windows)


# --- producers ------------------------------------------------------------------------


class Fingerprint:
    """Keys of one output. ``short`` outputs (fewer than k words) have one whole-text key."""

    __slots__ = ("keys", "words", "short")

    def __init__(self, keys: frozenset, words: int, short: bool) -> None:
        self.keys = keys
        self.words = words
        self.short = short


def fingerprint(text: str, k: int) -> Optional[Fingerprint]:
    """Fingerprint of a produced output, or None for text without any word."""
    ids = word_ids(text)
    if not ids:
        return None
    if len(ids) < k:
        return Fingerprint(frozenset((tuple_key(ids),)), len(ids), True)
    return Fingerprint(frozenset(ngram_keys(ids, k)), len(ids), False)


def sample(keys: frozenset, limit: int = MAX_KEYS_PER_SOURCE) -> Tuple[Tuple[int, ...], int]:
    """Keys an output keeps in the registry, and the threshold they were sampled under.

    Up to ``limit`` keys are all kept (threshold 2**64). Beyond that we keep the keys below
    the largest power of two that leaves at most ``limit``: a *content-defined* sample, so a
    shingle shared by two outputs is kept by both or by neither (when their thresholds are
    equal; see ``decidable`` in :mod:`.linking`) and coverage stays an unbiased estimate.
    """
    ordered = sorted(keys)
    if len(ordered) <= limit:
        return tuple(ordered), 1 << 64
    threshold = 1 << (ordered[limit].bit_length() - 1)
    return tuple(ordered[: bisect.bisect_left(ordered, threshold)]), threshold


# --- consumers ------------------------------------------------------------------------


#: inputs (messages) up to this many words also record their short n-grams, so a short
#: output copied from them (a rewriter echoing part of the question) is recognised.
INHERIT_SCAN_WORDS = 64


class InputKeys:
    """Keys of a consumer's inputs.

    ``shingles``: the k-shingle keys (what the ``consumed`` digest samples); ``wholes``:
    the whole-text key of each input shorter than k words; ``all``: everything to look
    up, i.e. both plus the n-grams for short outputs currently registered; ``small``: for
    short inputs (<= :data:`INHERIT_SCAN_WORDS` words), every n-gram of 3..k-1 words, so
    that a short output copied from them can be recognised (``all`` + ``small`` are what an
    output of this consumer may have copied from its inputs).
    """

    __slots__ = ("shingles", "wholes", "all", "small")

    def __init__(self, shingles: set, wholes: List[int], all_keys: set, small: set) -> None:
        self.shingles = shingles
        self.wholes = wholes
        self.all = all_keys
        self.small = small


#: inputs whose keys are kept between calls at most (a chat re-sends its system prompt and
#: its history every turn: those messages cost one dict probe), texts longer than
#: ``TEXT_CACHE_MAX_CHARS`` are never kept, and the cached entries hold at most
#: ``TEXT_CACHE_MAX_KEYS`` keys and word ids in total. Emptied when full (as the word cache).
TEXT_CACHE_MAX = 256
TEXT_CACHE_MAX_CHARS = 4096
TEXT_CACHE_MAX_KEYS = 65_536
# (digest key, k, {text: entry}, [keys held]); replaced as a whole when the key or k changes.
_text_cache: tuple = (None, 0, {}, [0])
_text_cache_lock = threading.Lock()


def _text_keys(text: str, k: int) -> Optional[tuple]:
    """(ids, whole key or None, k-shingle keys, short n-gram keys or None) of one input,
    None for text without any word. Cached for short-enough texts (see ``TEXT_CACHE_*``);
    entries are never changed after they are made."""
    secret = _digest_key.key()
    owner, owner_k, cache, held = _text_cache
    if owner is not secret or owner_k != k:
        cache, held = _text_cache_for(secret, k)
    entry = cache.get(text)
    if entry is not None:
        return entry[0]
    ids = word_ids(text)
    count = len(ids)
    cacheable = len(text) <= TEXT_CACHE_MAX_CHARS and type(text) is str
    if not count:
        keys = None
        size = 1
    else:
        if count < k:
            whole, shingles = tuple_key(ids), frozenset()
        else:  # a text not kept gets a fresh mutable set: input_keys may add to it
            whole, shingles = None, (frozenset if cacheable else set)(ngram_keys(ids, k))
        small = None
        if count <= INHERIT_SCAN_WORDS:
            top = min(k, count + 1)
            if FAST_KEYS and top > MIN_EMBEDDED_WORDS:  # every n-gram size in one C-level pass
                tails = [ids[i:] for i in range(1, top - 1)]
                small = frozenset(map(MASK.__and__, map(hash, _chain(
                    [zip(ids, *tails[: n - 1]) for n in range(MIN_EMBEDDED_WORDS, top)]))))
            else:
                small = frozenset().union(*[ngram_keys(ids, n) for n in range(MIN_EMBEDDED_WORDS, top)])
        keys = (ids, whole, shingles, small)
        size = count + len(shingles) + (len(small) if small else 0)
    if cacheable:
        with _text_cache_lock:  # misses only: the bounds hold under threads too
            if len(cache) >= TEXT_CACHE_MAX or held[0] + size > TEXT_CACHE_MAX_KEYS:
                cache.clear()
                held[0] = 0
            if text not in cache:
                cache[text] = (keys, size)
                held[0] += size
    return keys


def _text_cache_for(secret: Optional[bytes], k: int) -> Tuple[dict, list]:
    global _text_cache
    cache: dict = {}
    held = [0]
    _text_cache = (secret, k, cache, held)
    return cache, held


def clear_text_cache() -> None:
    """Forget every cached input (benchmarks measuring first-seen prompts; tests)."""
    _text_cache_for(None, 0)


def text_cache_size() -> Tuple[int, int]:
    """(entries, keys and word ids held) of the input-keys cache (tests check its bounds)."""
    return len(_text_cache[2]), _text_cache[3][0]


def input_keys(texts: Iterable[str], k: int, short_lengths: Iterable[int] = ()) -> InputKeys:
    """Every key an input can match: its k-shingles, the whole-text key of each input
    shorter than k words, and its n-grams for the short output lengths currently
    registered (``short_lengths``; only n >= :data:`MIN_EMBEDDED_WORDS` is searched
    inside longer inputs: one or two words would match too much).

    Cost is linear in the input (one extra pass per distinct short length); an input
    seen recently (a system prompt, a chat's history) costs a dict probe.
    """
    shingle_parts: list = []
    wholes: List[int] = []
    extra: set = set()
    lengths = [n for n in set(short_lengths) if MIN_EMBEDDED_WORDS <= n < k] if short_lengths else ()
    small_parts: list = []
    for text in texts:
        keys = _text_keys(text, k)
        if keys is None:
            continue
        ids, whole, text_shingles, small = keys
        if small:
            small_parts.append(small)
        if whole is not None:
            wholes.append(whole)
        elif text_shingles:
            shingle_parts.append(text_shingles)
        for n in lengths:
            if n < len(ids):
                extra.update(ngram_keys(ids, n))
    # one input's (cached, immutable) sets are used as they are: no copy. Nothing changes
    # these sets afterwards (consumers only read them; see ``_api``).
    if len(shingle_parts) == 1:
        shingles = shingle_parts[0]
    else:  # add to a fresh (uncached, mutable) part if there is one: a long prompt is not copied
        shingles = next((part for part in shingle_parts if type(part) is set), None)
        if shingles is None:
            shingles = set().union(*shingle_parts)
        else:
            for part in shingle_parts:
                if part is not shingles:
                    shingles.update(part)
    small_keys = small_parts[0] if len(small_parts) == 1 else set().union(*small_parts)
    all_keys = shingles.union(wholes) if (wholes or extra) else shingles
    if extra:
        all_keys |= extra
    return InputKeys(shingles, wholes, all_keys, small_keys)


def hex_key(key: int) -> str:
    return format(key, "016x")
