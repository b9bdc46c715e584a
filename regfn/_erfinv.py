"""XLA CPU's float32 ``erf_inv`` (with its Cephes log1p and logf), bit for bit, for :func:`regfn.random.normal`.

Only ``random.normal`` uses it, through :func:`_erfinv32`.

jax.random.normal is sqrt(2) * erf_inv(u). XLA expands erf_inv into Giles'
polynomials in w = -log1p(-u*u) (M. Giles, "Approximating the erfinv
function", GPU Computing Gems, 2011), and XLA CPU inlines its own float32
log1p: x - x^2/2 + x^3 P(x)/Q(x) (Cephes' rational approximation) for
|x| < sqrt(2) - 1, otherwise Cephes' logf of 1 + x. LLVM then contracts every
multiply-add of the polynomial evaluations into a fused multiply-add (FMA).
(All of this is read off the LLVM IR and machine code that jax 0.10 emits.)
We redo the same float32 operations in the same order: products of two
float32 numbers are exact in float64, so an FMA is a float64 multiply and add
rounded once to float32, and every other operation is rounded to float32
where XLA rounds it. Over all 2**23 uniforms that jax.random.normal can draw
this reproduces jax.random.normal (float32, CPU, x86-64 with FMA) exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def _f32(x: float) -> float:
    """``x`` rounded to the nearest float32."""
    return float(torch.tensor(x, dtype=torch.float32))


_ERFINV_CENTRAL = tuple(
    map(
        _f32,
        (  # in w - 2.5, for w < 5
            2.81022636e-08,
            3.43273939e-07,
            -3.5233877e-06,
            -4.39150654e-06,
            0.00021858087,
            -0.00125372503,
            -0.00417768164,
            0.246640727,
            1.50140941,
        ),
    )
)
_ERFINV_TAIL = tuple(
    map(
        _f32,
        (  # in sqrt(w) - 3, for w >= 5
            -0.000200214257,
            0.000100950558,
            0.00134934322,
            -0.00367342844,
            0.00573950773,
            -0.0076224613,
            0.00943887047,
            1.00167406,
            2.83297682,
        ),
    )
)
_LOG1P_SMALL = _f32(2.0**0.5 - 1.0)
_LOG1P_P = tuple(
    map(
        _f32,
        (  # Cephes log1p, numerator and denominator
            4.5270000862445199635215e-5,
            4.9854102823193375972212e-1,
            6.5787325942061044846969e0,
            2.9911919328553073277375e1,
            6.0949667980987787057556e1,
            5.7112963590585538103336e1,
            2.0039553499201281259648e1,
        ),
    )
)
_LOG1P_Q = tuple(
    map(
        _f32,
        (
            1.0,
            1.5062909083469192198054e1,
            8.3047565967967209469434e1,
            2.2176239823732856465394e2,
            3.0909872225312059774938e2,
            2.1642788614495947685003e2,
            6.0118660497603843919306e1,
        ),
    )
)
_LOGF_P = tuple(
    map(
        _f32,
        (  # Cephes logf: log1p(f) = f - f^2/2 + f^3 P(f)
            7.0376836292e-2,
            -1.1514610310e-1,
            1.1676998740e-1,
            -1.2420140846e-1,
            1.4249322787e-1,
            -1.6668057665e-1,
            2.0000714765e-1,
            -2.4999993993e-1,
            3.3333331174e-1,
        ),
    )
)
_LN2_HI, _LN2_LO = _f32(0.693359375), _f32(-2.12194440e-4)
# Cephes' logf halves the significand of v = 1 + x from this value on (a bit
# trick on 0x3F3504F3 = float32(sqrt(1/2)) in the original).
_SQRT2_F32 = 1.41421353816986083984375  # float32 0x3FB504F3, the largest float32 below sqrt(2)


def _horner(p: Tensor, coeffs: tuple[float, ...], t: Tensor, round32: Callable[[Tensor], Tensor]) -> Tensor:
    """Horner's rule with float32 FMAs: writes the polynomial at ``t`` into ``p``.

    ``p`` and ``t`` are float64 tensors holding float32 values; each step
    ``p * t + c`` is exact up to the one rounding to float64, then rounded to
    float32, the way one float32 FMA rounds.
    """
    round32(p.copy_(t).mul_(coeffs[0]).add_(coeffs[1]))
    for c in coeffs[2:]:
        round32(p.mul_(t).add_(c))
    return p


def _select_(m: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``a`` where ``m`` else ``b``, written into ``a``."""
    return a.copy_(torch.where(m, a, b))


def _split_exponent(v: Tensor) -> tuple[Tensor, Tensor]:
    """``v = 2**e * (1 + f)`` with ``sqrt(1/2) <= 1 + f < sqrt(2)``, for positive float32 ``v``.

    Cephes' ``logf`` gets ``e`` and ``f`` from the float's bits; this does the
    same with exact float64 arithmetic (``floor(log2(v))`` corrected by one
    where rounding missed, then exact multiplications by powers of two), since
    reinterpreting bits (``Tensor.view(dtype)``) has no vmap rule before torch 2.13.
    Returns float64 tensors.
    """
    v = v.to(torch.float64)
    e = torch.floor(torch.log2(v))
    m = v * torch.exp2(-e)
    e = e + (m >= 2.0).to(e.dtype) - (m < 1.0).to(e.dtype)
    m = v * torch.exp2(-e)  # exact: a power of two times a float32 value
    high = (m >= _SQRT2_F32).to(e.dtype)  # the float32 just below sqrt(2) is Cephes' threshold
    return e + high, m * torch.exp2(-high) - 1.0


def _erfinv32(u: Tensor) -> Tensor:
    """XLA CPU's float32 ``erf_inv(u)``, bit for bit (see the module docstring).

    Works in float64 buffers updated in place (float32 values throughout), to
    keep the number of passes over memory low.
    """
    f64 = torch.float64
    scratch = torch.empty_like(u)

    def round32(b: Tensor) -> Tensor:  # round a float64 buffer to float32, in place
        scratch.copy_(b)
        return b.copy_(scratch)

    u64 = u.to(f64)
    x = round32(u64 * u64).neg_()
    b0, b1, b2, b3 = (torch.empty_like(x) for _ in range(4))
    # log1p(x), |x| < sqrt(2) - 1: x + (x^3 P(x) / Q(x) - x^2 / 2)
    p = _horner(b0, _LOG1P_P, x, round32)
    q = _horner(b1, _LOG1P_Q, x, round32)
    r = round32(p.div_(q))
    x2 = round32(q.copy_(x).mul_(x))
    small = round32(b2.copy_(x).mul_(x2))
    round32(small.mul_(r))
    round32(small.add_(x2, alpha=-0.5))
    round32(small.add_(x))
    # otherwise: 1 + x = 2^e (1 + f) with sqrt(1/2) <= 1 + f < sqrt(2), and
    # log1p(x) = e*ln2_hi + ((f - f^2/2 + f^3 P(f)) + e*ln2_lo)
    e, f = _split_exponent(scratch.copy_(x).add_(1.0))
    f2 = round32(f * f)
    f3 = round32(f2 * f)
    y = _horner(b3, _LOGF_P[0:3], f, round32)
    y1 = _horner(torch.empty_like(x), _LOGF_P[3:6], f, round32)
    round32(y.mul_(f3).add_(y1))
    y2 = _horner(y1, _LOGF_P[6:9], f, round32)
    round32(y.mul_(f3).add_(y2))
    round32(y.mul_(f3).add_(round32(y2.copy_(e).mul_(_LN2_LO))))
    big = round32(f.add_(f2, alpha=-0.5))
    round32(big.add_(y))
    round32(big.add_(e, alpha=_LN2_HI))
    log1p = _select_(x.abs_() < _LOG1P_SMALL, small, big)
    # erf_inv: Giles' polynomial in w - 2.5 (w < 5) or sqrt(w) - 3, then times u.
    # One pass of Horner's rule for both: each step adds the central coefficient,
    # plus (tail - central coefficient) where w >= 5. That is one rounding to
    # float64 before float32 for central w, two for the rare tail (harmless:
    # checked for every float32 u).
    central = log1p > -5.0
    w = log1p.neg_()
    t = _select_(central, round32(torch.sub(w, 2.5)), round32(round32(w.sqrt_()).sub_(3.0)))
    tail = b1.copy_(central).neg_().add_(1.0)
    steps = [(a, b - a) for a, b in zip(_ERFINV_CENTRAL, _ERFINV_TAIL, strict=True)]
    p = b0.copy_(tail).mul_(steps[0][1]).add_(steps[0][0])
    for c, dc in steps[1:]:
        round32(p.mul_(t).add_(tail, alpha=dc).add_(c))
    out = p.mul_(u64).to(torch.float32)
    return torch.where(u.abs() == 1.0, u * float("inf"), out)
