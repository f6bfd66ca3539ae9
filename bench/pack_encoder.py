"""Pack e5-small small enough to copy to a GPU machine: vocabulary pruned to the benchmark texts, fp16 on disk.

    python bench/pack_encoder.py SRC OUT        # SRC: make_pretrained_encoder.sh's output (~470 MB)

multilingual-e5-small's 250k-piece embedding matrix is 80 % of its weights. Only the sentencepiece
pieces that THUCNews and BDCI texts tokenise into are kept (plus the specials): unigram segmentation
picks the best-scoring path, and dropping pieces on no chosen path leaves every chosen path available
and best, so those texts tokenise exactly as before (checked on every text; ids are renumbered).
Weights are stored in fp16 (train/bert.py loads them back as fp32). The encoder layers are untouched.
Needs torch, transformers, safetensors and numpy only (bench/gpu.py's data loaders).
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu import DATASETS, load_bdci, load_thucnews  # noqa: E402


def benchmark_texts(data: Path) -> list[str]:
    texts = [t for split in ("train", "dev", "test") for t in load_thucnews(data, split, None)[0]]
    bdci = load_bdci(data)
    return texts + [t for split in ("train", "dev", "test") for t in bdci[split][0]]


def pack(src: Path, out: Path, texts: list[str], fp16: bool = True) -> dict:
    """src → out with only the pieces `texts` tokenise into; `fp16`: weights stored in half precision
    (bench/models.py keeps fp32 for CPU training). Raises SystemExit if any text tokenises differently."""
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=True)
    old_ids = tokenizer(texts, add_special_tokens=True)["input_ids"]
    spec = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    if spec["model"]["type"] != "Unigram":
        raise SystemExit(f"only sentencepiece unigram tokenizers are pruned, not {spec['model']['type']}")
    specials = {t["id"] for t in spec["added_tokens"]}
    keep = sorted(set().union(*map(set, old_ids)) | specials | {spec["model"]["unk_id"]})
    new_of = {old: new for new, old in enumerate(keep)}
    n_pieces = len(spec["model"]["vocab"])
    assert all(new_of[i] == i for i in range(4)), "the first four specials must keep their ids"
    spec["model"]["vocab"] = [spec["model"]["vocab"][i] for i in keep]
    spec["model"]["unk_id"] = new_of[spec["model"]["unk_id"]]
    for token in spec["added_tokens"]:
        token["id"] = new_of[token["id"]]
    for token in (spec.get("post_processor") or {}).get("special_tokens", {}).values():
        token["ids"] = [new_of[i] for i in token["ids"]]

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    shutil.copy(src / "tokenizer_config.json", out / "tokenizer_config.json")
    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    config["vocab_size"] = len(keep)
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    state = load_file(src / "model.safetensors")
    index = torch.tensor(keep)
    for key in [k for k in state if k.endswith("word_embeddings.weight")]:
        state[key] = state[key][index]
    state = {k: (v.half() if fp16 and v.is_floating_point() else v).contiguous() for k, v in state.items()}
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})

    packed = AutoTokenizer.from_pretrained(out, local_files_only=True)
    new_ids = packed(texts, add_special_tokens=True)["input_ids"]
    mismatches = sum([new_of[i] for i in a] != b for a, b in zip(old_ids, new_ids, strict=True))
    if mismatches:
        raise SystemExit(f"the pruned tokenizer differs on {mismatches} of {len(texts)} texts")
    size = sum(f.stat().st_size for f in out.iterdir())
    return {"pieces_kept": len(keep), "pieces": n_pieces, "texts_checked": len(texts),
            "megabytes": round(size / 2**20, 1), "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=DATASETS)
    args = parser.parse_args()
    print(json.dumps(pack(args.src, args.out, benchmark_texts(args.data))))


if __name__ == "__main__":
    main()
