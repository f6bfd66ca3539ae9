"""The model input text from separate fields, each within its character budget, and its hash."""

import hashlib

import polars as pl

from dagster_autotag.corpus.config import InputText

TEXT = "text"
TEXT_HASH = "text_hash"


def input_text_column(spec: InputText) -> pl.Expr:
    """Fields in template order, each stripped and cut to max_chars; empty fields are skipped so
    an article without ASR/OCR reads the same as before the join."""
    parts = []
    for f in spec.fields:
        part = pl.col(f.name).str.strip_chars().str.slice(0, f.max_chars).str.strip_chars()
        parts.append(pl.when(part == "").then(None).otherwise(part))
    return pl.concat_str(parts, separator=spec.separator, ignore_nulls=True).fill_null("").alias(TEXT)


def text_hash(texts: pl.Series) -> pl.Series:
    """Stable 64-bit hash (hex) of the text with case, whitespace and punctuation removed, so exact
    duplicates that differ only in spacing or punctuation share a hash. blake2b, not polars' hash,
    because polars does not promise the same hash across versions and the hash is stored."""
    keys = texts.str.to_lowercase().str.replace_all(r"[\s\p{P}\p{S}]+", "")
    return pl.Series(
        TEXT_HASH,
        [hashlib.blake2b(k.encode(), digest_size=8).hexdigest() for k in keys.to_list()],
        dtype=pl.String,
    )
