"""A randomly initialised Llama-style chat model built offline, saved like any hub model.

Tests, the batching benchmark and a local smoke run need a real model directory that
`AutoModelForCausalLM` / `AutoTokenizer` load through the same code as a downloaded
model, without a network. Its answers are random words: it exercises the engine
(loading, chat template, batching, streaming), not language.

    python -m llmops_inference.toy_model DIR [--hidden-size 64 --layers 2]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|> {{ message['content'] }} </s> "
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
_SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]
_TEXT = (
    "the a an and or but if then when where what who how why is are was were be been "
    "i you he she it we they me him her us them my your our their this that these those "
    "hello hi thanks please yes no maybe ok sure sorry help question answer invoice order "
    "refund account password login email payment card shipping delivery return product price "
    "time day week month year today tomorrow yesterday now later soon again never always "
    "can could will would should may might must do does did have has had get got make "
    "go come see look find give take tell ask say know think want need use try work call "
    "good bad new old big small long short high low first last next other same different "
    "in on at to from by with for of about into over under after before between through"
)


@dataclass(frozen=True)
class ToyModelShape:
    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int = 128
    vocab_size: int = 512
    context_length: int = 512


def build_toy_chat_model(
    directory: Path, shape: ToyModelShape = ToyModelShape(), *, seed: int = 0
) -> Path:
    """Write a tokenizer (word level, with a chat template) and a random model to `directory`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = list(dict.fromkeys(_TEXT.split()))
    filler = max(0, shape.vocab_size - len(_SPECIAL) - len(words))
    vocab = {
        token: i for i, token in enumerate(_SPECIAL + words + [f"w{i}" for i in range(filler)])
    }
    word_level = Tokenizer(models.WordLevel(vocab, unk_token=_SPECIAL[1]))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    word_level.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    roles = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # untyped in transformers
        tokenizer_object=word_level,
        additional_special_tokens=_SPECIAL[4:],
        model_max_length=shape.context_length,
        **roles,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=shape.context_length,
        pad_token_id=vocab["<pad>"],
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--hidden-size", type=int, default=ToyModelShape.hidden_size)
    parser.add_argument("--layers", type=int, default=ToyModelShape.layers)
    args = parser.parse_args()
    shape = ToyModelShape(
        hidden_size=args.hidden_size,
        layers=args.layers,
        intermediate_size=args.hidden_size * 2,
    )
    print(build_toy_chat_model(args.directory, shape))


if __name__ == "__main__":
    main()
