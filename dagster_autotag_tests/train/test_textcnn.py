"""TextCNN: tokenisation and vocabulary, pretrained vectors, real (tiny) training, early stopping,
the fused inference path and save/load. Models are small so the whole file runs in seconds."""

from pathlib import Path

import numpy as np
import pytest
import torch

from dagster_autotag.train.textcnn import (
    TextCNN,
    TextCNNConfig,
    TrainedTextCNN,
    micro_f1,
    pos_weights,
    train_textcnn,
)
from dagster_autotag.train.vocab import (
    PAD,
    PAD_ID,
    UNK,
    UNK_ID,
    Vocab,
    load_vectors,
    read_vector_tokens,
    tokenize,
    vector_coverage,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAR_VECTORS = REPO_ROOT.parent / "shared" / "datasets" / "char_vectors"

KEYWORDS = ("谍照", "上市", "报价")  # label j is on iff KEYWORDS[j] is in the text
# Filler shares characters with the keywords, so single characters are not enough: bigrams are.
FILLER = list("新款车型发布消息今日据悉厂商官方照片价格市场上海报道汽车销量配置动力")
# Small and single-threaded: on a shared 2-core machine two OpenMP threads mostly wait for each other.
SMALL = {"embed_dim": 32, "num_filters": 32, "kernel_sizes": (2, 3), "max_len": 40, "min_freq": 1, "lr": 1e-2}
SMALL |= {"batch_size": 32, "num_threads": 1}


def synthetic(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    texts, y = [], np.zeros((n, len(KEYWORDS)), dtype=np.float32)
    for i in range(n):
        parts = list(rng.choice(FILLER, size=rng.integers(8, 20)))
        for j, keyword in enumerate(KEYWORDS):
            if rng.random() < 0.4:
                parts.insert(int(rng.integers(0, len(parts) + 1)), keyword)
                y[i, j] = 1
        texts.append("".join(parts))
    return texts, y


@pytest.fixture(scope="module")
def task() -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    return (*synthetic(400, seed=1), *synthetic(120, seed=2))


@pytest.fixture(scope="module")
def trained(task) -> tuple[TrainedTextCNN, list[tuple[int, dict]]]:
    calls: list[tuple[int, dict]] = []
    config = TextCNNConfig(**SMALL, max_epochs=6, patience=3, seed=0)
    model = train_textcnn(*task, config, on_epoch=lambda e, m: calls.append((e, m)), label_names=list(KEYWORDS))
    return model, calls


def test_char_vocab_and_encoding():
    vocab = Vocab.build(["你好 世界", "你好ABC", "你们"], "char", min_freq=2)
    assert vocab.tokens[:2] == [PAD, UNK]
    assert set(vocab.tokens[2:]) == {"你", "好"}  # everything else occurs once
    ids = vocab.encode_batch(["你 好\n世", "", "好好好好好好"], max_len=4)
    assert ids.dtype == np.int64 and ids.shape == (3, 4)
    you, good = vocab.stoi["你"], vocab.stoi["好"]
    assert ids[0].tolist() == [you, good, UNK_ID, PAD_ID]  # whitespace dropped, unknown → unk, padded
    assert ids[1].tolist() == [PAD_ID] * 4
    assert ids[2].tolist() == [good] * 4  # truncated to max_len


def test_char_vocab_options_and_json(tmp_path: Path):
    vocab = Vocab.build(["aAb", "b", "cc🚗"], "char", max_size=4)
    assert vocab.tokens == [PAD, UNK, "a", "b"]  # lower-cased; ties broken by token; specials counted
    assert vocab.encode_batch(["AB🚗c"], 5).tolist() == [[2, 3, UNK_ID, UNK_ID, PAD_ID]]
    vocab.save(tmp_path / "v.json")
    again = Vocab.load(tmp_path / "v.json")
    assert again.tokens == vocab.tokens and again.level == "char"
    assert (again.encode_batch(["ba"], 3) == vocab.encode_batch(["ba"], 3)).all()


def test_word_tokenisation_via_jieba():
    assert tokenize("我们今天去北京 看车展", "word") == ["我们", "今天", "去", "北京", "看", "车展"]
    vocab = Vocab.build(["我们今天去北京", "我们去上海"], "word")
    ids = vocab.encode_batch(["我们去广州"], max_len=4)[0]
    assert ids[:2].tolist() == [vocab.stoi["我们"], vocab.stoi["去"]]
    assert ids[2] == UNK_ID and ids[3] == PAD_ID


def test_pos_weights_and_micro_f1():
    y = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 0]], dtype=np.float32)
    assert pos_weights(y, cap=2.5).tolist() == [2.5, 1.0, 1.0]  # 3/1 capped; no positives; 2/2
    assert micro_f1(y, y) == 1.0
    assert micro_f1(y, np.zeros_like(y)) == 0.0


@pytest.mark.parametrize(
    ("kernel_sizes", "top_k", "buckets"), [((2, 3, 4), 1, 0), ((2, 3), 2, 0), ((7, 8, 9), 1, 0), ((1, 3), 2, 7)]
)
def test_padding_is_exact_and_fused_path_matches(kernel_sizes: tuple[int, ...], top_k: int, buckets: int):
    torch.set_num_threads(1)  # the training tests set it too; this test may run first
    torch.manual_seed(0)
    model = TextCNN(30, 4, embed_dim=16, kernel_sizes=kernel_sizes, num_filters=8, top_k=top_k, ngram_buckets=buckets)
    model.eval()
    if buckets:  # the channel starts at 0; give it weights so the comparison means something
        with torch.no_grad():
            model.ngram_embedding.weight[1:].normal_()
    ids = torch.randint(2, 30, (4, 12))
    ids[0, 5:] = PAD_ID
    ids[1, 1:] = PAD_ID
    ids[2] = PAD_ID  # an empty text
    with torch.inference_mode():
        logits = model(ids)
        longer = model(torch.cat([ids, torch.zeros(4, 9, dtype=torch.long)], dim=1))
        fused = model.forward_fused(ids, model.fused_tables())
    torch.testing.assert_close(logits, longer, rtol=0, atol=0)
    torch.testing.assert_close(logits, fused, rtol=0, atol=1e-5)


def test_learns_synthetic_multilabel_task(trained, task):
    model, calls = trained
    probs = model.predict_proba(task[2])
    assert probs.dtype == np.float32 and probs.shape == (120, 3)
    assert micro_f1(task[3], probs >= 0.5) >= 0.9
    assert [e for e, _ in calls] == [h["epoch"] for h in model.history]
    assert set(calls[0][1]) >= {"train_loss", "dev_loss", "dev_micro_f1"}
    assert model.label_names == list(KEYWORDS)


def test_k_max_pooling_trains(task):
    config = TextCNNConfig(**SMALL, top_k=2, max_epochs=4)
    model = train_textcnn(*task, config)
    assert model.model.head.in_features == 2 * 32 * 2
    assert micro_f1(task[3], model.predict_proba(task[2]) >= 0.5) >= 0.8


def test_early_stopping_restores_best_epoch(task):
    train_texts, train_y, dev_texts, dev_y = task
    # Dev labels are the complement of the truth: the better the model learns, the worse dev F1 gets.
    config = TextCNNConfig(**SMALL, max_epochs=8, patience=2)
    model = train_textcnn(train_texts, train_y, dev_texts, 1 - dev_y, config)
    f1s = [h["dev_micro_f1"] for h in model.history]
    assert model.best_epoch == 1 + int(np.argmax(f1s))
    assert len(f1s) == model.best_epoch + config.patience < config.max_epochs
    assert f1s[-1] < max(f1s)
    restored = micro_f1(1 - dev_y, model.predict_proba(dev_texts) >= 0.5)
    assert restored == pytest.approx(max(f1s), abs=1e-9)


def test_save_load_gives_identical_probabilities(trained, task, tmp_path: Path):
    model, _ = trained
    model.save(tmp_path / "m")
    loaded = TrainedTextCNN.load(tmp_path / "m")
    assert loaded.label_names == model.label_names and loaded.config == model.config
    assert loaded.history == model.history and loaded.best_epoch == model.best_epoch
    np.testing.assert_array_equal(loaded.predict_proba(task[2]), model.predict_proba(task[2]))


def test_word_level_model_trains_and_round_trips(task, tmp_path: Path):
    texts, y = task[0][:120], task[1][:120]
    config = TextCNNConfig(**{**SMALL, "max_len": None}, tokenizer="word", max_epochs=2)
    model = train_textcnn(texts, y, texts[:30], y[:30], config)
    assert model.vocab.level == "word" and config.effective_max_len == 64
    probs = model.predict_proba(["谍照曝光", ""])
    assert probs.shape == (2, 3) and np.isfinite(probs).all()
    loaded = TrainedTextCNN.load(model.save(tmp_path / "w"))
    np.testing.assert_array_equal(loaded.predict_proba(["谍照曝光", ""]), probs)


def test_bigram_channel_learns_character_order(tmp_path: Path):
    """With kernel size 1 a plain model sees only single characters, so 谍照 and 照谍 look alike; the
    hashed bigram channel tells them apart. The model round-trips through save/load."""
    rng = np.random.default_rng(0)
    texts, y = [], []
    for i in range(480):
        filler = "".join(rng.choice(FILLER, size=int(rng.integers(4, 10))))
        cut = int(rng.integers(0, len(filler) + 1))
        texts.append(filler[:cut] + ("谍照" if i % 2 else "照谍") + filler[cut:])
        y.append([i % 2])
    y = np.asarray(y, dtype=np.float32)
    base = {**SMALL, "kernel_sizes": (1,), "max_epochs": 6, "patience": 6}

    def dev_f1(model: TrainedTextCNN) -> float:
        return micro_f1(y[400:], model.predict_proba(texts[400:]) >= 0.5)

    plain = train_textcnn(texts[:400], y[:400], texts[400:], y[400:], TextCNNConfig(**base))
    bigram = train_textcnn(texts[:400], y[:400], texts[400:], y[400:], TextCNNConfig(**base, ngram_buckets=997))
    assert dev_f1(plain) < 0.75 and dev_f1(bigram) >= 0.95
    loaded = TrainedTextCNN.load(bigram.save(tmp_path / "b"))
    assert loaded.config.ngram_buckets == 997
    np.testing.assert_array_equal(loaded.predict_proba(texts[400:]), bigram.predict_proba(texts[400:]))
    with pytest.raises(ValueError, match="ngram_buckets"):
        TextCNNConfig(ngram_buckets=1)


@pytest.fixture
def tiny_vectors(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    tokens = [" ", "谍", "照", "上", "<UNK>", "<PAD>"]
    matrix = np.arange(len(tokens) * 4, dtype=np.float32).reshape(len(tokens), 4) + 1
    npy, txt = tmp_path / "v.npy", tmp_path / "v.vocab.txt"
    np.save(npy, matrix)
    txt.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return npy, txt, matrix


def test_load_vectors_maps_tokens(tiny_vectors):
    npy, txt, matrix = tiny_vectors
    assert read_vector_tokens(txt) == [" ", "谍", "照", "上", UNK, PAD]
    vocab = Vocab([PAD, UNK, "照", " ", "谍", "市"], "char")
    vectors = load_vectors(npy, txt, vocab)
    assert vectors.shape == (6, 4) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors[PAD_ID], 0)
    np.testing.assert_array_equal(vectors[UNK_ID], matrix[4])
    np.testing.assert_array_equal(vectors[2], matrix[2])
    np.testing.assert_array_equal(vectors[3], matrix[0])  # the line holding a single space
    np.testing.assert_array_equal(vectors[4], matrix[1])
    assert not np.isin(vectors[5], matrix).all()  # missing: random
    assert vector_coverage(vocab, read_vector_tokens(txt)) == 0.75


@pytest.mark.parametrize("freeze", [True, False])
def test_pretrained_embeddings_frozen_or_fine_tuned(tiny_vectors, task, freeze: bool):
    npy, txt, _ = tiny_vectors
    texts, y = task[0][:64], task[1][:64]
    config = TextCNNConfig(
        **{**SMALL, "embed_dim": None}, vectors_npy=str(npy), vectors_vocab=str(txt), freeze_embeddings=freeze
    )
    config.max_epochs, config.patience = 2, 5
    model = train_textcnn(texts, y, texts[:16], y[:16], config)
    initial = load_vectors(npy, txt, model.vocab, seed=config.seed)
    weights = model.model.embedding.weight.detach().numpy()
    assert weights.shape == initial.shape == (len(model.vocab), 4)
    assert np.array_equal(weights, initial) == freeze
    assert model.embedding_coverage == pytest.approx(
        sum(t in {"谍", "照", "上"} for t in model.vocab.tokens[2:]) / (len(model.vocab) - 2)
    )


def test_embedding_lr_weight_decay_and_lr_decay(tiny_vectors, task):
    """embedding_lr=0 keeps the pretrained vectors while the rest trains; weight decay shrinks weights;
    lr_decay multiplies the learning rate after each epoch."""
    npy, txt, _ = tiny_vectors
    texts, y = task[0][:64], task[1][:64]
    base = {**SMALL, "embed_dim": None, "vectors_npy": str(npy), "vectors_vocab": str(txt)}
    base |= {"max_epochs": 2, "patience": 5}
    still = train_textcnn(texts, y, texts[:16], y[:16], TextCNNConfig(**base, embedding_lr=0.0))
    initial = load_vectors(npy, txt, still.vocab, seed=0)
    np.testing.assert_array_equal(still.model.embedding.weight.detach().numpy(), initial)
    assert still.history[-1]["train_loss"] < still.history[0]["train_loss"]  # the convolutions learned

    def conv_norm(weight_decay: float) -> float:
        model = train_textcnn(texts, y, texts[:16], y[:16], TextCNNConfig(**base, weight_decay=weight_decay))
        return sum(float(c.weight.detach().norm()) for c in model.model.convs)

    assert conv_norm(5.0) < conv_norm(0.0)

    decayed = train_textcnn(texts, y, texts[:16], y[:16], TextCNNConfig(**{**base, "max_epochs": 3}, lr_decay=0.5))
    assert [h["lr"] for h in decayed.history] == pytest.approx([1e-2, 5e-3, 2.5e-3])
    with pytest.raises(ValueError, match="lr_decay"):
        TextCNNConfig(lr_decay=0.0)
    assert TextCNNConfig.from_json(TextCNNConfig(embedding_lr=1e-4, weight_decay=0.01).to_json()).embedding_lr == 1e-4


@pytest.mark.shared_data
def test_real_char_vectors():
    npy, txt = CHAR_VECTORS / "tencent_char_200d.npy", CHAR_VECTORS / "tencent_char_200d.vocab.txt"
    if not (npy.exists() and txt.exists()):
        pytest.skip(f"{CHAR_VECTORS} not present")
    tokens = read_vector_tokens(txt)
    assert tokens[0] == " " and tokens[-2:] == [UNK, PAD]
    vocab = Vocab.build(["汽车新款上市价格发布的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就"], "char")
    vectors = load_vectors(npy, txt, vocab)
    assert vectors.shape == (len(vocab), 200)
    assert vector_coverage(vocab, tokens) > 0.9
    matrix = np.load(npy, mmap_mode="r")
    np.testing.assert_array_equal(vectors[vocab.stoi["车"]], matrix[tokens.index("车")])


def test_dagster_config_reaches_the_model_config():
    from dagster_autotag.train.assets import TextCNNRunConfig

    dagster_config = TextCNNRunConfig(
        embedding_lr=1e-4, weight_decay=0.01, lr_decay=0.8, ngram_buckets=5000, embedding_dropout=0.2
    )
    config = dagster_config.to_dataclass()
    assert (config.embedding_lr, config.weight_decay, config.lr_decay) == (1e-4, 0.01, 0.8)
    assert (config.ngram_buckets, config.embedding_dropout) == (5000, 0.2)
    assert TextCNNRunConfig().to_dataclass().embedding_lr is None


def test_embedding_dropout_only_in_training():
    torch.manual_seed(0)
    model = TextCNN(30, 2, embed_dim=16, num_filters=8, embedding_dropout=0.5, ngram_buckets=11)
    ids = torch.randint(2, 30, (3, 10))
    model.train()
    assert not torch.equal(model(ids), model(ids))  # channels dropped at random (head dropout too)
    model.dropout.p = 0.0
    assert not torch.equal(model(ids), model(ids))  # embedding dropout alone still varies
    model.eval()
    with torch.inference_mode():
        torch.testing.assert_close(model(ids), model.forward_fused(ids, model.fused_tables()), rtol=0, atol=1e-5)
    assert TextCNNConfig.from_json(TextCNNConfig(embedding_dropout=0.3).to_json()).embedding_dropout == 0.3
    with pytest.raises(ValueError, match="embedding_dropout"):
        TextCNNConfig(embedding_dropout=1.0)
