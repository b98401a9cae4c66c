"""``hf`` generation backend: batched sampling with ``transformers`` ``model.generate``.

Throughput on CPU and GPU comes from putting many sequences in each ``generate`` call: prompts
are sorted by token length (so a batch wastes little padding), each prompt is repeated
``num_samples`` times inside the batch, prompts are left-padded, and the KV cache is used.

Sampling gives every row its own seed (from the seed, the record key and the sample index) and
draws its random numbers from a counter-based generator on the device (:mod:`.rng`), which makes a
prompt's samples independent of its batch neighbours, the batch size and the device, with no
per-row host work per step. Stop strings end a row as soon as its recent text contains one.

Decoding is our own loop over the model's forward with a ``DynamicCache`` (``prune=True``, the
default): a row that has finished (EOS, stop string) leaves the batch — its KV cache rows are
dropped — so the remaining rows stop paying for it. ``transformers``' ``generate`` keeps finished
rows in the batch until the longest one ends; with answers of mixed lengths that is a quarter or
more of the decode work. ``prune=False`` runs ``generate`` with the same sampler (a logits
processor) and gives the same tokens (tested); it is the fallback for models whose cache cannot
drop rows. Per decoding step the host does one synchronisation (how many rows finished); the
tokens come back to the host once per batch (and every step only when stop strings are set).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria

from selfalign.data.chat import render_for_generation
from selfalign.errors import ConfigError
from selfalign.generation.sampling import Prompt, SamplingParams
from selfalign.models.batching import pad_batch


def row_seed(seed: int, key: str, sample: int) -> int:
    """A 63-bit seed for one (seed, prompt key, sample index) — stable across runs and platforms."""
    digest = hashlib.sha256(f"{seed}\x1f{key}\x1f{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def eos_ids_of(model: Any, tokenizer: Any) -> list[int]:
    """Token ids that end a response: the model's generation-config EOS ids and the tokenizer's."""
    ids: set[int] = set()
    gc = getattr(model, "generation_config", None)
    e = getattr(gc, "eos_token_id", None) if gc is not None else None
    if isinstance(e, int):
        ids.add(e)
    elif isinstance(e, (list, tuple)):
        ids.update(int(x) for x in e)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return sorted(ids)


class RowSampler(LogitsProcessor):
    """Logits processor that samples one token per row with that row's own random numbers.

    ``__call__(input_ids, scores)`` applies temperature, top-k and top-p to ``scores`` (B, V) and
    returns a tensor that is 0 at the sampled token and -inf elsewhere, so greedy decoding picks
    exactly the sampled token. Inverse-CDF sampling: u = ``row_uniforms(seed, t)`` for the row's
    seed and the decoding step t (:mod:`selfalign.generation.rng`: counter-based, computed on the
    logits' device for all rows at once), token = first index whose cumulative probability exceeds
    u · total. Each call is one decoding step (the counter advances).
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_k: int = 0, top_p: float = 1.0):
        if temperature <= 0:
            raise ValueError("RowSampler needs temperature > 0 (use greedy decoding for 0)")
        self.seeds = torch.tensor([int(s) for s in seeds], dtype=torch.int64, device="cpu")
        self.step = 0
        self._level = 0  # candidate size to try first for top-p (see sample)
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p

    # top-p looks at the best 256 tokens, then 4096, then all: exact, and cheap when mass is peaked
    nucleus_candidates = 256

    def keep(self, rows: torch.Tensor | Sequence[int]) -> None:
        """Keep only the seeds of ``rows`` (rows that finished leave the batch)."""
        idx = rows if isinstance(rows, torch.Tensor) else torch.tensor(list(rows), dtype=torch.long, device="cpu")
        self.seeds = self.seeds[idx.to(self.seeds.device)]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        idx = self.sample(scores)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, idx, 0.0)
        return out

    def sample(self, scores: torch.Tensor) -> torch.Tensor:
        """One sampled token id per row, shape (B, 1), for this decoding step; advances the step."""
        from selfalign.generation.rng import row_uniforms

        x = scores.float() / self.temperature
        vocab = x.shape[-1]
        if self.seeds.device != x.device:
            self.seeds = self.seeds.to(x.device)
        u = row_uniforms(self.seeds, self.step).unsqueeze(1)
        self.step += 1
        k = self.top_k if 0 < self.top_k < vocab else 0
        if not k and self.top_p >= 1.0:  # plain temperature sampling over the whole vocabulary
            probs = torch.softmax(x, dim=-1)
            cdf = probs.cumsum(-1)
            idx = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp(max=vocab - 1)
            bad = probs.gather(-1, idx) <= 0  # float rounding at the top end: take the mode
            idx = torch.where(bad, probs.argmax(-1, keepdim=True), idx)
        else:
            # work on the sorted top candidates: top-k, or enough tokens to hold the top-p nucleus
            lse = torch.logsumexp(x, -1, keepdim=True)
            if k:
                vals, order = torch.topk(x, k, dim=-1)
                lse = torch.logsumexp(vals, -1, keepdim=True)  # top-k renormalises first
            else:
                sizes = (self.nucleus_candidates, 16 * self.nucleus_candidates, vocab)
                for level in range(self._level, len(sizes)):
                    vals, order = torch.topk(x, min(sizes[level], vocab), dim=-1)  # sorted, largest first
                    if sizes[level] >= vocab or not bool((torch.exp(vals - lse).sum(-1) < self.top_p).any()):
                        break  # every row's nucleus lies inside the candidates
                # the next step starts at the size that sufficed here (a flat distribution stays flat
                # for a while: the sizes that just failed are skipped); every 32 steps one size smaller
                self._level = level if self.step % 32 else max(level - 1, 0)
            probs = torch.exp(vals - lse)
            if self.top_p < 1.0:
                before = probs.cumsum(-1) - probs  # mass strictly before each token
                probs = probs.masked_fill(before >= self.top_p, 0.0)
            cdf = probs.cumsum(-1)
            pos = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp(max=probs.shape[-1] - 1)
            pos = torch.where(probs.gather(-1, pos) <= 0, torch.zeros_like(pos), pos)
            idx = order.gather(-1, pos)
        return idx


class StopOnStrings(StoppingCriteria):
    """Stopping criterion: a row is done once the text of its last tokens contains a stop string."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_len: int):
        self.tokenizer, self.stops, self.prompt_len = tokenizer, list(stops), prompt_len
        self.window = max(len(s) for s in self.stops) + 8  # every token has ≥1 character (mostly)

    def hits(self, tails: Any) -> list[bool]:
        """Per row of generated token ids (only the last ``window`` are read): does its text contain a
        stop string?"""
        texts = self.tokenizer.batch_decode([t[-self.window:] for t in tails], skip_special_tokens=True)
        return [any(s in t for s in self.stops) for t in texts]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.tensor(self.hits(input_ids[:, self.prompt_len:]), dtype=torch.bool, device=input_ids.device)


def parse_row(tokenizer: Any, gen: Sequence[int], eos_ids: set[int], end_ids: set[int],
              stops: Sequence[str]) -> dict:
    """Turn one row of generated token ids into ``{"text", "finish", "num_tokens"}``."""
    gen = list(gen)
    cut = next((j for j, t in enumerate(gen) if t in end_ids), len(gen))
    text = tokenizer.decode(gen[:cut], skip_special_tokens=True)
    hits = [p for p in (text.find(s) for s in stops) if p >= 0]
    if hits:
        return {"text": text[:min(hits)], "finish": "stop", "num_tokens": cut}
    if cut < len(gen):
        return {"text": text, "finish": "stop", "num_tokens": cut + (1 if gen[cut] in eos_ids else 0)}
    return {"text": text, "finish": "length", "num_tokens": len(gen)}


class HFEngine:
    """Batched generation with a ``transformers`` causal LM.

    ``model_or_spec`` is a model spec (registry name, folder, hub id — loaded here) or an
    already-loaded model (then ``tokenizer`` is required). ``batch_size`` counts sequences
    (prompt × sample) per ``generate`` call.
    """

    def __init__(self, model_or_spec: Any, tokenizer: Any = None, *, batch_size: int = 64,
                 dtype: str = "float32", device: str | None = None, chat_template: bool = True,
                 system_prompt: str | None = None, max_prompt_tokens: int | None = None,
                 num_threads: int | None = None, prune: bool = True):
        from selfalign.models.load import load_causal_lm, load_tokenizer
        from selfalign.utils.progress import status

        if isinstance(model_or_spec, (str, Path)):
            self.name = str(model_or_spec)
            with status(f"loading {self.name}"):
                self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_or_spec)
                self.model = load_causal_lm(model_or_spec, dtype=dtype, device=device)
        else:
            if tokenizer is None:
                raise ConfigError("HFEngine: pass the tokenizer together with an already-loaded model")
            self.model, self.tokenizer = model_or_spec, tokenizer
            self.name = str(getattr(getattr(self.model, "config", None), "_name_or_path", "") or "in-memory")
            if device is not None:
                self.model.to(device)
        if num_threads:
            torch.set_num_threads(num_threads)
        self.batch_size = batch_size
        self.prune = prune
        self.chat_template = chat_template
        self.system_prompt = system_prompt
        self.max_prompt_tokens = max_prompt_tokens
        self.eos_ids = eos_ids_of(self.model, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.eos_ids[0]

    def fingerprint(self) -> str:
        tmpl = getattr(self.tokenizer, "chat_template", None) or ""
        return (f"hf:{self.name}:{hashlib.sha256(str(tmpl).encode()).hexdigest()[:12]}:"
                f"{self.chat_template}:{self.system_prompt}:{self.max_prompt_tokens}")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, prompt: Prompt) -> list[int]:
        text, special = render_for_generation(self.tokenizer, prompt, self.system_prompt, self.chat_template)
        ids = self.tokenizer(text, add_special_tokens=special)["input_ids"]
        if self.max_prompt_tokens and len(ids) > self.max_prompt_tokens:
            ids = ids[-self.max_prompt_tokens:]
        return list(ids)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams,
                 keys: Sequence[str] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> list[list[dict]]:
        """``params.num_samples`` responses for each prompt, in prompt order."""
        keys = [str(i) for i in range(len(prompts))] if keys is None else [str(k) for k in keys]
        if len(keys) != len(prompts):
            raise ValueError("keys and prompts differ in length")
        encoded = [self.encode(p) for p in prompts]
        n = params.num_samples
        per_call = max(1, self.batch_size // n)
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))  # longest first: OOM early
        results: list[list[dict] | None] = [None] * len(prompts)
        done = tokens = 0
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(order), per_call):
                chunk = order[start:start + per_call]
                rows = [(i, k) for i in chunk for k in range(n)]
                out = self._generate_rows([encoded[i] for i, _ in rows],
                                          [row_seed(params.seed, keys[i], k) for i, k in rows], params)
                for i in chunk:
                    results[i] = []
                for (i, _), resp in zip(rows, out, strict=True):
                    results[i].append(resp)  # type: ignore[union-attr]
                    tokens += resp["num_tokens"]
                done += len(chunk)
                if on_progress is not None:
                    on_progress(done, tokens)
        finally:
            self.model.train(was_training)
        return results  # type: ignore[return-value]

    def generate_ids(self, rows: Sequence[Sequence[int]], seeds: Sequence[int], params: SamplingParams
                     ) -> list[list[int]]:
        """Generated token ids for already-encoded prompts, one row per sample, each drawn with its own
        ``seeds[i]`` (see :func:`row_seed`) — for trainers that need the tokens, not only the text (PPO).

        Rows are batched ``batch_size`` at a time, longest first; a row ends as in :meth:`generate`
        (EOS — kept as its last token —, a stop string, or ``max_new_tokens``). :func:`parse_row` turns
        a row into its text and finish reason. Runs the model in eval mode (restored after).
        """
        if len(seeds) != len(rows):
            raise ValueError("rows and seeds differ in length")
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
        out: list[list[int]] = [[] for _ in rows]
        was_training = self.model.training
        self.model.eval()
        try:
            for s in range(0, len(order), self.batch_size):
                idx = order[s:s + self.batch_size]
                gen = self._raw_rows([list(rows[i]) for i in idx], [int(seeds[i]) for i in idx], params)
                for i, g in zip(idx, gen, strict=True):
                    out[i] = g
        finally:
            self.model.train(was_training)
        return out

    def _generate_rows(self, rows: list[list[int]], seeds: list[int], params: SamplingParams) -> list[dict]:
        gen = self._raw_rows(rows, seeds, params)
        eos = set(self.eos_ids)
        end = eos | {self.pad_id}
        return [parse_row(self.tokenizer, g, eos, end, params.stop) for g in gen]

    def _raw_rows(self, rows: list[list[int]], seeds: list[int], params: SamplingParams) -> list[list[int]]:
        """Token ids generated for each row of one batch (left-padded prompts)."""
        ids, mask = pad_batch(rows, self.pad_id, left=True)
        dev = self.device
        ids, mask = ids.to(dev), mask.to(dev)
        if self.prune:
            return self._decode(ids, mask, seeds, params)
        return self._hf_generate(ids, mask, seeds, params)

    def _decode(self, ids: torch.Tensor, mask: torch.Tensor, seeds: list[int],
                params: SamplingParams) -> list[list[int]]:
        """Token ids generated for each row by the pruning decode loop (see the module docstring).

        Row r ends after an EOS token, when its text since the prompt contains a stop string, or
        after ``max_new_tokens``; the finished rows' cache entries are dropped at once.
        """
        from selfalign.generation.cache import decode_cache

        n, dev = ids.shape[0], ids.device
        sampler = RowSampler(seeds, params.temperature, params.top_k, params.top_p) \
            if params.temperature > 0 else None
        eos = torch.tensor(self.eos_ids, dtype=torch.long, device=dev)
        stops = StopOnStrings(self.tokenizer, params.stop, 0) if params.stop else None
        steps: list[tuple[torch.Tensor, torch.Tensor]] = []  # per step: (tokens [b], their original rows [b])
        rows = torch.arange(n, device=dev)  # original row index of each row still in the batch
        texts: list[list[int]] = [[] for _ in range(n)]  # host copy, kept only for stop strings
        alive = list(range(n))
        cache = decode_cache(self.model.config, ids.shape[1] + params.max_new_tokens)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        step_ids = ids
        with torch.inference_mode():
            for t in range(params.max_new_tokens):
                logits = self._last_logits(step_ids, mask, pos, cache)
                nxt = sampler.sample(logits) if sampler is not None else logits.argmax(-1, keepdim=True)
                steps.append((nxt[:, 0], rows))
                done = torch.isin(nxt[:, 0], eos)
                if stops is not None:
                    done |= self._stop_hits(stops, nxt[:, 0].tolist(), alive, texts, dev)
                n_done = int(done.sum())  # the one host synchronisation of a step
                if n_done == rows.shape[0] or t == params.max_new_tokens - 1:
                    break
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
                pos = mask.sum(-1, keepdim=True) - 1
                step_ids = nxt
                if n_done:
                    keep = (~done).nonzero().flatten()
                    cache.batch_select_indices(keep)
                    mask, pos, step_ids, rows = mask[keep], pos[keep], step_ids[keep], rows[keep]
                    if sampler is not None:
                        sampler.keep(keep)
                    if stops is not None:
                        alive = [alive[j] for j in keep.tolist()]
        out: list[list[int]] = [[] for _ in range(n)]
        if steps:  # one device-to-host copy for the whole batch
            for r, tok in zip(torch.cat([w for _, w in steps]).tolist(), torch.cat([x for x, _ in steps]).tolist()):
                out[r].append(tok)
        return out

    def _stop_hits(self, stops: StopOnStrings, toks: list[int], alive: list[int], texts: list[list[int]],
                   device: torch.device) -> torch.Tensor:
        """Append this step's tokens to the host copies of the alive rows; True where a row's recent text
        now contains a stop string."""
        for j, r in enumerate(alive):
            texts[r].append(toks[j])
        return torch.tensor(stops.hits([texts[r] for r in alive]), dtype=torch.bool, device=device)

    def _last_logits(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any) -> torch.Tensor:
        """Logits of the last position; the cache goes in as ``cache=`` where the model's forward
        names that parameter (transformers ≥ 5.24, where ``past_key_values=`` is deprecated), else as
        ``past_key_values=``; ``logits_to_keep=1`` where the forward names it."""
        from selfalign.models.forward import cache_kwarg, forward_params

        kw: dict[str, Any] = dict(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        kw[cache_kwarg(self.model)] = cache
        if "logits_to_keep" in forward_params(self.model):
            kw["logits_to_keep"] = 1
        return self.model(**kw).logits[:, -1, :].float()

    def _hf_generate(self, ids: torch.Tensor, mask: torch.Tensor, seeds: list[int],
                     params: SamplingParams) -> list[list[int]]:
        """Token ids per row from ``transformers``' ``generate`` (greedy on the sampler's output)."""
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        width = ids.shape[1]
        gc = GenerationConfig(max_new_tokens=params.max_new_tokens, do_sample=False, num_beams=1,
                              eos_token_id=self.eos_ids, pad_token_id=self.pad_id, use_cache=True,
                              repetition_penalty=1.0, no_repeat_ngram_size=0, min_new_tokens=0)
        procs = LogitsProcessorList()
        if params.temperature > 0:
            procs.append(RowSampler(seeds, params.temperature, params.top_k, params.top_p))
        stops = StoppingCriteriaList()
        if params.stop:
            stops.append(StopOnStrings(self.tokenizer, params.stop, width))
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=gc,
                                      logits_processor=procs, stopping_criteria=stops)
        return out[:, width:].tolist()
