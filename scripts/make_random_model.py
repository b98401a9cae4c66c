"""Build a random-init Llama model of a real SmolLM2 shape, with the SmolLM2 tokenizer, for throughput runs.

    python scripts/make_random_model.py TOKENIZER_DIR OUT {135m,1.7b} [--device cuda|cpu]

Throughput does not depend on the weights' values, so a GPU machine without the real weights can still
measure training and generation speed. This script reads only the tokenizer from ``TOKENIZER_DIR``
(``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``, copied from the prepared model
folder in the selfalign cache), builds ``LlamaForCausalLM`` with the SmolLM2-135M or SmolLM2-1.7B shape
(seeded, so the weights are the same on every run), casts it to bfloat16 and saves model, generation
config and tokenizer to ``OUT`` as safetensors, ready for ``--model OUT``. ``--device`` is where the
weights are initialised (default ``cuda``; ``cpu`` works anywhere, slower for 1.7b).
"""

import argparse

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

SHAPES = {  # SmolLM2-135M and SmolLM2-1.7B shapes
    "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3),
    "1.7b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32, num_key_value_heads=32),
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tok_dir", help="folder with tokenizer.json, tokenizer_config.json, chat_template.jinja")
    ap.add_argument("out", help="output folder for the model")
    ap.add_argument("size", choices=sorted(SHAPES), help="which SmolLM2 shape")
    ap.add_argument("--device", default="cuda", help="device to initialise the weights on (default: cuda)")
    ap.add_argument("--logit-scale", type=float, default=1.0,
                    help="multiply the final norm's weight (so every logit) by this: random init gives nearly "
                         "uniform next-token distributions (entropy ≈ 10.4 nats over 49k tokens), unlike a "
                         "trained model; 5 gives a peaked one, closer to what sampling meets in practice")
    args = ap.parse_args(argv)

    tok = AutoTokenizer.from_pretrained(args.tok_dir)
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=2048, tie_word_embeddings=True, rope_theta=10000.0,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      **SHAPES[args.size])
    torch.manual_seed(0)
    with torch.device(args.device):
        m = LlamaForCausalLM(cfg)
        with torch.no_grad():
            m.model.norm.weight.mul_(args.logit_scale)
        m = m.to(torch.bfloat16)
    m.generation_config.pad_token_id = tok.pad_token_id
    m.generation_config.eos_token_id = tok.eos_token_id
    m.save_pretrained(args.out, safe_serialization=True)
    tok.save_pretrained(args.out)
    print(args.out, sum(p.numel() for p in m.parameters()) / 1e6, "M params")


if __name__ == "__main__":
    main()
