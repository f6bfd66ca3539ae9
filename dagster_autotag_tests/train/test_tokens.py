"""Token ids computed once and cached; length-bucketed batches (train/tokens.py)."""

import numpy as np
import pytest

from dagster_autotag.train.tokens import Encoded, bucketed_batches, cached_encode, encode, prefetched, sorted_batches
from dagster_autotag_tests.train.test_bert import synthetic
from dagster_autotag_tests.train.tiny_bert import tiny_bert_dir


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    texts, _ = synthetic(40, 0)
    return AutoTokenizer.from_pretrained(tiny_bert_dir(tmp_path_factory.mktemp("tok"), texts), local_files_only=True)


def test_a_batch_of_cached_ids_is_what_the_tokenizer_pads(tokenizer):
    texts, _ = synthetic(20, 1)
    rows = np.array([3, 0, 7, 12])
    ids, mask = encode(tokenizer, texts, 16).batch(rows)
    expected = tokenizer([texts[i] for i in rows], max_length=16, truncation=True, padding=True, return_tensors="pt")
    assert ids.tolist() == expected["input_ids"].tolist() and mask.tolist() == expected["attention_mask"].tolist()


def test_the_cache_is_keyed_by_texts_and_max_len(tokenizer, tmp_path):
    texts, _ = synthetic(20, 1)
    first = cached_encode(tokenizer, texts, 16, tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 2
    again = cached_encode(tokenizer, texts, 16, tmp_path)  # read back, not recomputed
    assert isinstance(again.ids, np.memmap) and np.array_equal(again.ids, first.ids)
    cached_encode(tokenizer, texts, 24, tmp_path)
    cached_encode(tokenizer, [*texts[:-1], texts[-1] + "谍照"], 16, tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 6 and not list(tmp_path.glob("*.tmp"))


def test_bucketed_batches_cover_every_row_once_with_little_padding():
    lengths = np.random.default_rng(0).integers(1, 200, 1000)
    batches = bucketed_batches(lengths, 32, np.random.default_rng(1), chunk_batches=10)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    unsorted = sum(len(b) * lengths[b].max() for b in np.array_split(np.random.default_rng(1).permutation(1000), 32))
    assert padded < 0.75 * unsorted  # random batches pad to near the longest text
    again = bucketed_batches(lengths, 32, np.random.default_rng(1), chunk_batches=10)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))  # the seed decides


def test_sorted_batches_and_prefetch_keep_every_item_in_order():
    lengths = np.array([5, 1, 3, 3, 2])
    batches = sorted_batches(lengths, 2)
    assert [b.tolist() for b in batches] == [[1, 4], [2, 3], [0]]
    assert list(prefetched(lambda b: b.sum(), batches)) == [5, 5, 0]
    assert len(Encoded(np.zeros((0, 4), np.int32), np.zeros(0, np.int32))) == 0


def test_tokenising_leaves_the_callers_texts_as_small_as_they_were(tokenizer):
    """CPython caches a str's UTF-8 form inside it when the Rust tokenizer reads it: a day of
    Chinese texts would keep ~3 extra bytes per character for as long as the day is held."""
    import sys

    texts = ["".join(t) + "新车谍照" for t in synthetic(8, 3)[0]]
    sizes = [sys.getsizeof(t) for t in texts]
    encode(tokenizer, texts, 16)
    assert [sys.getsizeof(t) for t in texts] == sizes
    tokenizer(texts, max_length=16, truncation=True)  # the plain call does grow them: the check can fail
    assert [sys.getsizeof(t) for t in texts] != sizes


def test_free_memory_goes_back_through_glibc_malloc_trim():
    import platform

    from dagster_autotag.train import heap

    if platform.libc_ver()[0] == "glibc":  # elsewhere release_free_memory is a no-op
        assert heap._malloc_trim() is not None
    heap.release_free_memory()
