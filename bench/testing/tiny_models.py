"""Tiny random-init models for tests and offline runs: the real architectures, tokenizers and
``save_pretrained`` layout, built from the recipes in ``models/tiny/`` (their outputs are noise).

Each builder is called as ``builder(config, out_dir, seed)`` by :func:`bench.modelref.build_tiny`.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

from bench.errors import BadInput, Unavailable
from bench.vision.transforms import CLIP_MEAN, CLIP_STD

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"


# -- CLIP and X-CLIP -------------------------------------------------------------------------


def clip_bpe_path() -> Path:
    """open_clip's bundled BPE merge list, found without importing open_clip."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable("the CLIP BPE vocabulary ships with open_clip_torch; pip install open_clip_torch")
    path = Path(next(iter(spec.submodule_search_locations))) / BPE_FILE
    if not path.is_file():
        raise Unavailable(f"{path} is missing from the installed open_clip_torch")
    return path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable character table (the BPE works on these characters)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def build_clip_tokenizer(out_dir: Path, merges: int, max_length: int) -> Any:
    """A CLIPTokenizer over the first ``merges`` BPE merges of open_clip's vocabulary (the
    full list has 48,894), saved into ``out_dir``; vocabulary size is ``512 + merges + 2``."""
    from transformers import CLIPTokenizer

    with gzip.open(clip_bpe_path()) as fh:
        lines = fh.read().decode("utf-8").split("\n")
    # Line 0 is a header; the reference tokenizer uses lines 1 .. 48894.
    chosen = [m for m in lines[1:49152 - 256 - 2 + 1] if m.strip()][:merges]
    base = list(_bytes_to_unicode().values())
    vocab = base + [v + "</w>" for v in base] + ["".join(m.split()) for m in chosen]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    src = out_dir / "bpe"
    src.mkdir(parents=True, exist_ok=True)
    (src / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False),
                                    encoding="utf-8")
    (src / "merges.txt").write_text("#version: 0.2\n" + "\n".join(chosen) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(vocab=str(src / "vocab.json"), merges=str(src / "merges.txt"),
                              model_max_length=max_length)
    tokenizer.save_pretrained(out_dir)  # tokenizer.json holds vocabulary and merges
    shutil.rmtree(src)
    return tokenizer


def _split_recipe(config: dict[str, Any], known: set[str]) -> tuple[dict[str, Any], int, int]:
    cfg = dict(config)
    merges = int(cfg.pop("merges", 4000))
    image_size = int(cfg.get("vision_config", {}).get("image_size", 224))  # the configs' default
    unknown = set(cfg) - known
    if unknown:
        raise BadInput(f"tiny model recipe: unknown config key(s) {sorted(unknown)}; known: {sorted(known)}")
    return cfg, merges, image_size


def _text_config_with_tokenizer(cfg: dict[str, Any], out_dir: Path, merges: int) -> dict[str, Any]:
    """Pop ``text_config`` from ``cfg``, save a CLIP BPE tokenizer that fits it into ``out_dir``,
    and return the text config with that tokenizer's vocabulary size and special token ids."""
    text = dict(cfg.pop("text_config", {}))
    max_length = int(text.get("max_position_embeddings", 77))
    tokenizer = build_clip_tokenizer(out_dir, merges, max_length)
    text.update(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return text


def build_tiny_clip(config: dict[str, Any], out_dir: Path, seed: int) -> None:
    """Random-init CLIPModel + CLIPTokenizer (open_clip BPE) + image processor into ``out_dir``.

    ``config``: CLIPConfig keywords (``text_config``, ``vision_config``, ``projection_dim``)
    plus ``merges`` (BPE merges kept; the text vocabulary size follows from it).
    """
    import torch
    from transformers import CLIPConfig, CLIPModel

    cfg, merges, image_size = _split_recipe(config, {"text_config", "vision_config", "projection_dim",
                                                     "logit_scale_init_value"})
    text = _text_config_with_tokenizer(cfg, out_dir, merges)
    _save_image_processor(out_dir, image_size, "CLIPImageProcessor")
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=dict(cfg.pop("vision_config", {})), **cfg))
    model.save_pretrained(out_dir)


def build_tiny_xclip(config: dict[str, Any], out_dir: Path, seed: int) -> None:
    """Random-init XCLIPModel + CLIPTokenizer (open_clip BPE) + image processor into ``out_dir``.

    ``config``: XCLIPConfig keywords (``text_config``, ``vision_config`` with ``num_frames``
    and the ``mit_*`` sizes, ``projection_dim``, ``prompt_layers``, ...) plus ``merges``.
    """
    import torch
    from transformers import XCLIPConfig, XCLIPModel

    known = {"text_config", "vision_config", "projection_dim", "prompt_layers", "prompt_alpha",
             "prompt_hidden_act", "prompt_num_attention_heads", "prompt_attention_dropout",
             "prompt_projection_dropout", "logit_scale_init_value"}
    cfg, merges, image_size = _split_recipe(config, known)
    text = _text_config_with_tokenizer(cfg, out_dir, merges)
    _save_image_processor(out_dir, image_size, "VideoMAEImageProcessor")
    torch.manual_seed(seed)
    model = XCLIPModel(XCLIPConfig(text_config=text, vision_config=dict(cfg.pop("vision_config", {})), **cfg))
    model.save_pretrained(out_dir)


def _save_image_processor(out_dir: Path, image_size: int, kind: str) -> None:
    """The ``preprocessor_config.json`` a real checkpoint of this family carries."""
    cfg = {"image_processor_type": kind, "do_resize": True, "size": {"shortest_edge": image_size},
           "do_center_crop": True, "crop_size": {"height": image_size, "width": image_size},
           "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
           "image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD), "resample": 3,
           "do_convert_rgb": True}
    (out_dir / "preprocessor_config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")


# -- BLIP captioner --------------------------------------------------------------------------


DEFAULT_TINY_WORDS = [
    "a", "an", "the", "of", "on", "in", "at", "with", "and", "to", "is", "are", "near", "over", "under",
    "man", "woman", "person", "people", "child", "dog", "cat", "bird", "horse", "car", "bus", "bike",
    "boat", "train", "street", "road", "room", "kitchen", "table", "chair", "window", "door", "tree",
    "grass", "sky", "water", "beach", "snow", "field", "city", "building", "house", "red", "blue",
    "green", "white", "black", "yellow", "small", "large", "standing", "sitting", "walking",
    "running", "holding", "looking", "playing", "riding", "eating", "talking",
]
"""Word list of the tiny captioner's tokenizer (any words do; these make its noise readable)."""


def build_tiny_caption(config: dict[str, Any], out_dir: Path, seed: int) -> None:
    """Build a random-init BLIP captioner (tokenizer, image processor, model) into ``out_dir``.

    The tokenizer is a BERT word-piece tokenizer over a small word list (no download);
    ``config`` keys (all optional): ``hidden_size``, ``layers``, ``heads``,
    ``intermediate_size``, ``image_size``, ``patch_size``, ``words``, and ``vocab_size`` (pad
    the vocabulary to this many tokens). With BLIP base's sizes (768, 12, 12, 3072, 384, 16,
    vocab 30524) it has the real model's cost, which is what speed benchmarks need.
    """
    import torch
    import transformers
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipProcessor

    # transformers 5 splits a torchvision-backed processor from the PIL one (torchvision is
    # not a dependency here); 4.x has only the PIL one, under the plain name.
    image_processor_cls: Any = (getattr(transformers, "BlipImageProcessorPil", None)
                                or transformers.BlipImageProcessor)

    known = {"hidden_size", "layers", "heads", "intermediate_size", "image_size", "patch_size",
             "words", "vocab_size"}
    unknown = set(config) - known
    if unknown:
        raise BadInput(f"tiny caption recipe: unknown config key(s) {sorted(unknown)}; "
                       f"known: {sorted(known)}")
    hidden = int(config.get("hidden_size", 32))
    layers = int(config.get("layers", 2))
    heads = int(config.get("heads", 2))
    image_size = int(config.get("image_size", 32))
    patch = int(config.get("patch_size", 8))
    intermediate = int(config.get("intermediate_size", 2 * hidden))
    words = list(config.get("words", DEFAULT_TINY_WORDS))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    tokens = specials + [w for w in words if w not in specials]
    # Padding to a real vocabulary size gives the real embedding and output-layer cost.
    tokens += [f"[unused{i}]" for i in range(int(config.get("vocab_size", 0)) - len(tokens))]
    vocab = {w: i for i, w in enumerate(tokens)}
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]")
    size = {"height": image_size, "width": image_size}
    processor = BlipProcessor(image_processor=image_processor_cls(size=size), tokenizer=tokenizer)
    text = {"vocab_size": len(vocab), "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "intermediate_size": intermediate, "max_position_embeddings": 64,
            "bos_token_id": vocab["[DEC]"], "sep_token_id": vocab["[SEP]"], "pad_token_id": vocab["[PAD]"],
            "eos_token_id": vocab["[SEP]"]}
    vision = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
              "intermediate_size": intermediate, "image_size": image_size, "patch_size": patch}
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision,
                                                    projection_dim=hidden))
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)


# -- causal LM -------------------------------------------------------------------------------

TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def build_tiny_causal_lm(config: dict[str, Any], out_dir: Path, seed: int) -> None:
    """A random-init Qwen2-architecture chat model with a byte-level tokenizer, saved to ``out_dir``.

    The tokenizer is the 256 byte symbols (no merges) plus the ChatML special tokens, so it
    is made offline; ``config`` holds the ``Qwen2Config`` sizes. Its output is garbage.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = TINY_CHAT_TEMPLATE
    fast.save_pretrained(out_dir)

    sizes = {k: v for k, v in config.items() if k != "architecture"}
    cfg = Qwen2Config(vocab_size=len(fast), eos_token_id=fast.eos_token_id,
                      pad_token_id=fast.pad_token_id, bos_token_id=None, tie_word_embeddings=True, **sizes)
    torch.manual_seed(seed)
    lm = Qwen2ForCausalLM(cfg)
    lm.generation_config = GenerationConfig(do_sample=False, eos_token_id=fast.eos_token_id,
                                            pad_token_id=fast.pad_token_id)
    lm.save_pretrained(out_dir)
