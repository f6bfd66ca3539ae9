"""A tiny BERT directory built on the fly (no hub): vocabulary from the given texts' characters."""

from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_bert_dir(path: Path, texts: list[str], hidden: int = 32, layers: int = 2, dropout: float = 0.1) -> Path:
    """`dropout`: the encoder's own (hidden and attention) dropout; 0 makes training deterministic."""
    from transformers import BertConfig, BertModel, BertTokenizer

    chars = sorted({c for t in texts for c in t.lower() if not c.isspace()})
    path.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(SPECIALS + chars)}
    tokenizer = BertTokenizer(vocab=vocab, tokenize_chinese_chars=True)  # transformers 5: `vocab`, not vocab_file
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
