"""Per-row random numbers for sampling, computed on the device in one vectorised op.

Each generated row has its own 63-bit seed (:func:`selfalign.generation.hf.row_seed`), so a prompt's
samples do not depend on their batch neighbours, the batch size or the device. The uniform number
a row uses at decoding step ``t`` is a pure function of ``(seed, t)`` — a counter-based generator
— so it can be computed for all rows at once on the accelerator, with no per-row host work and no
generator state to carry, drop or checkpoint::

    x    = seed + (t + 1) · γ                      (mod 2⁶⁴; γ = 0x9E3779B97F4A7C15, the golden ratio)
    z    = mix64(x)                                (SplitMix64's finaliser, Steele et al. 2014)
    u    = (z >> 40) / 2²⁴  ∈ [0, 1)               (the top 24 bits: exact in float32)

``mix64``: ``z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB;
z ^= z >> 31`` on unsigned 64-bit integers. torch has no uint64 arithmetic on every device, so the
tensor version works on int64 (two's-complement wrap-around of ``*`` and ``+`` gives the same low
64 bits) with logical right shifts written as arithmetic shift + mask. :func:`row_uniform` is the
plain-Python definition the tensor version is tested against (bit for bit).
"""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def _signed(v: int) -> int:
    """The int64 with the same 64 bits as unsigned ``v``."""
    return v - (1 << 64) if v >= 1 << 63 else v


def _mix64(z: int) -> int:
    z ^= z >> 30
    z = (z * _M1) & _MASK64
    z ^= z >> 27
    z = (z * _M2) & _MASK64
    return z ^ (z >> 31)


def row_uniform(seed: int, step: int) -> float:
    """The uniform number of a row with ``seed`` at decoding step ``step`` (plain Python reference)."""
    z = _mix64((seed + (step + 1) * _GAMMA) & _MASK64)
    return (z >> 40) / float(1 << 24)


def _lshr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 bits by ``k`` (arithmetic shift, then clear the sign-filled top)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def row_uniforms(seeds: torch.Tensor, step: int) -> torch.Tensor:
    """Uniform numbers [B] (float32, on ``seeds.device``) for int64 ``seeds`` [B] at decoding ``step``;
    element ``i`` equals ``row_uniform(seeds[i], step)`` (see the module docstring)."""
    x = seeds + _signed(((step + 1) * _GAMMA) & _MASK64)
    z = x ^ _lshr(x, 30)
    z = z * _signed(_M1)
    z = z ^ _lshr(z, 27)
    z = z * _signed(_M2)
    z = z ^ _lshr(z, 31)
    return _lshr(z, 40).to(torch.float32) / float(1 << 24)
