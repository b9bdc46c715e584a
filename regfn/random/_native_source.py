"""The C source of regfn's CPU kernel (:mod:`regfn.random._native` builds and loads it).

Plain C99, no Python or torch headers: threefry2x32's and philox4x32's words (each
key's stream, the same words as the tensor ciphers), dropout's keep masks drawn from
them, and Adam's moments (or its whole step) in one pass. The cipher rounds are written
out from the same constants as the tensor ciphers (:mod:`._threefry`, :mod:`._philox`).
"""

from __future__ import annotations

from ._philox import _BUMP, _M0, _M1, ROUNDS
from ._threefry import _PARITY, _ROTATIONS

__all__ = ["FUNCTIONS", "SOURCE"]


def _threefry_rounds() -> str:
    """threefry2x32's 20 rounds as C statements on ``x0, x1`` with key words ``ks[0..2]``."""
    lines = []
    for i in range(5):
        mixes = " ".join(f"MIX({r})" for r in _ROTATIONS[i % 2])
        lines.append(f"            {mixes} x0 += ks[{(i + 1) % 3}]; x1 += ks[{(i + 2) % 3}] + {i + 1}u;")
    return "\n".join(lines)


def _threefry_function(
    name: str, width: int, store: str, out: str = "int32_t", per_key: tuple[str, str] = ("", "")
) -> str:
    """A C function over every counter ``start .. start + n - 1`` of each key: ``width`` values of C type
    ``out`` stored per counter by ``store``. ``per_key`` = ``(parameter, statement)`` adds a parameter (an
    array with a value per key) and a statement run once per key ``b`` before its counters (which ``store``
    may read the result of)."""
    extra = f", {per_key[0]}" if per_key[0] else ""
    arg = per_key[1]
    return f"""
void {name}(const int64_t *kw, int64_t keys, int64_t n, int64_t start{extra}, {out} *out) {{
    for (int64_t b = 0; b < keys; ++b) {{
        const uint32_t ks[3] = {{(uint32_t)kw[2 * b], (uint32_t)kw[2 * b + 1],
                                (uint32_t)kw[2 * b] ^ (uint32_t)kw[2 * b + 1] ^ {_PARITY:#x}u}};
        {arg}
        for (int64_t j = 0; j < n;) {{  /* a stretch of counters with one high word: a 32-bit loop that vectorizes */
            const uint64_t first = (uint64_t)(start + j);
            const uint32_t hi = (uint32_t)(first >> 32), lo = (uint32_t)first;
            const int64_t left = n - j, room = (int64_t)(0x100000000ull - lo);
            const int64_t len = left < room ? left : room;
            {out} *o = out + {width} * (b * n + j);
            for (int64_t m = 0; m < len; ++m) {{
                uint32_t x0 = hi + ks[0];
                uint32_t x1 = lo + (uint32_t)m + ks[1];
{_threefry_rounds()}
                {store}
            }}
            j += len;
        }}
    }}
}}
"""


def _philox_function(name: str, store: str, out: str, per_key: tuple[str, str] = ("", "")) -> str:
    """A C function over words ``start .. start + n - 1`` (``start`` a multiple of 4) of each philox4x32 key:
    ``store`` writes word ``w[m]`` of block ``j`` to ``o[i]``, ``i = 4 j + m``; ``out`` and ``per_key`` as in
    :func:`_threefry_function`."""
    extra = f", {per_key[0]}" if per_key[0] else ""
    arg = per_key[1]
    return f"""
void {name}(const int64_t *kw, int64_t keys, int64_t n, int64_t start{extra}, {out} *out) {{
    const int64_t blocks = (n + 3) / 4;
    for (int64_t b = 0; b < keys; ++b) {{
        const uint32_t k0 = (uint32_t)kw[4 * b], k1 = (uint32_t)kw[4 * b + 1];
        const uint32_t s0 = (uint32_t)kw[4 * b + 2], s1 = (uint32_t)kw[4 * b + 3];
        {arg}
        {out} *o = out + b * n;
        for (int64_t j = 0; j < blocks; ++j) {{
            const uint64_t blk = (uint64_t)(start / 4 + j);
            uint32_t c0 = (uint32_t)blk, c1 = (uint32_t)(blk >> 32), c2 = s0, c3 = s1, ka = k0, kb = k1;
            for (int r = 0; r < {ROUNDS}; ++r) {{
                const uint64_t p0 = (uint64_t){_M0:#x}u * c0, p2 = (uint64_t){_M1:#x}u * c2;
                c0 = (uint32_t)(p2 >> 32) ^ c1 ^ ka;
                c1 = (uint32_t)p2;
                c2 = (uint32_t)(p0 >> 32) ^ c3 ^ kb;
                c3 = (uint32_t)p0;
                ka += {_BUMP[0]:#x}u;
                kb += {_BUMP[1]:#x}u;
            }}
            const uint32_t w[4] = {{c0, c1, c2, c3}};
            for (int m = 0; m < 4 && 4 * j + m < n; ++m) {{
                const int64_t i = 4 * j + m;
                {store}
            }}
        }}
    }}
}}
"""


_KEEP = (
    "const float *keep",
    """const int32_t below = regfn_below(keep[b]);
        if (below > 8388607 || below <= 0) {  /* every word kept (keep >= 1) or none (keep <= 0, NaN): no words drawn */
            for (int64_t i = 0; i < n; ++i) out[b * n + i] = below > 0 ? 1.0f : 0.0f;
            continue;
        }""",
)
"""The keep functions' extra parameter (a keep probability per key), the bound each key's words are compared with,
and the keys whose masks the bound alone decides (a sweep's ``p = 0`` configurations): filled without drawing."""


def _adam_scalars(scalars: int) -> str:
    """The per-configuration scalars of outer index ``o`` and lerp's two forms (shared by the Adam functions)."""
    return f"""const float *so = s + {scalars} * o;
        const float w1 = so[0], b2 = so[1], w2 = so[2], k2 = so[3], e = so[4];
        const int small = fabsf(w1) < 0.5f;
        const float coeff = small ? w1 : w1 - 1.0f;"""


def _adam_element(grad: str, store: str) -> str:
    """Adam's arithmetic on element ``i`` from the gradient ``grad``: the moments, the denominator, ``store``."""
    return f"""const float gi = {grad}, mi = m[i];
            const float vi = fmaf(w2 * gi, gi, v[i] * b2);
            const float mo = fmaf(coeff, gi - mi, small ? mi : gi);
            m_out[i] = mo;
            v_out[i] = vi;
            const float den = sqrtf(vi) / k2 + e;
            {store}"""


def _adam_function(name: str, param: str, scalars: int, store: str, grad: str = "g[i]") -> str:
    """A C function of Adam's moments over ``outer`` x ``inner`` float32 elements (scalars ``s[scalars * o ..]``
    of outer index ``o``, the first five ``(w1, b2, w2, k2, eps_bc1)``): ``m_out``, ``v_out`` and the
    denominator ``den``, which ``store`` writes to ``out`` (with ``param``, an extra input array), from the
    gradient ``grad``."""
    return f"""
void {name}(const float *restrict g, const float *m, const float *v,{param} const float *restrict s,
            int64_t outer, int64_t inner, float *m_out, float *v_out, float *restrict out) {{
    for (int64_t o = 0; o < outer; ++o) {{
        {_adam_scalars(scalars)}
        const int64_t b = o * inner;
        for (int64_t i = b; i < b + inner; ++i) {{
            {_adam_element(grad, store)}
        }}
    }}
}}
"""


_P = " const float *restrict p,"
"""The whole step's extra input, the parameters."""
_STEP = "out[i] = p[i] + (mo / den) * so[5];"
"""The whole step's store: the new parameter (three IEEE roundings, as torch's div, mul and add)."""
_L2 = " + so[6] * (p[i] + p[i])"
"""An L2 penalty's gradient added to the gradient, with autograd's rounding (optim._base.with_l2_gradient)."""
_TILE_ROWS, _TILE_COLS = 8, 1024
"""The tiles in which the transposed functions read their gradient: 8 rows by up to 1024 columns (32 KiB; measured
against 16 x 256, 64 x 64 and others on a 2-core AMD EPYC, docs/benchmarks/sweep.md)."""


def _adam_step_transposed(name: str, scalars: int, added: str = "") -> str:
    """Adam's whole step as ``regfn_adam_step`` computes it, element for element, where each configuration's
    gradient is the transpose of its ``rows`` x ``cols`` parameter's layout: ``g[o][c][r]`` is the gradient of
    ``p[o][r][c]`` (a vmapped ``bmm``'s weight gradient as autograd returns it). The gradient is copied a tile of
    whole rows at a time into a local buffer in the parameters' order (rows longer than a tile are cut), then
    the tile's rows run as one stretch of ``regfn_adam_step``'s loop, along memory; ``added`` is added to the
    gradient (the L2 term)."""
    tr, tc = _TILE_ROWS, _TILE_COLS
    return f"""
void {name}(const float *restrict g, const float *m, const float *v,{_P} const float *restrict s,
            int64_t outer, int64_t rows, int64_t cols, float *m_out, float *v_out, float *restrict out) {{
    float tile[{tr} * {tc}];
    for (int64_t o = 0; o < outer; ++o) {{
        {_adam_scalars(scalars)}
        const int64_t b = o * rows * cols;
        for (int64_t r0 = 0; r0 < rows; r0 += {tr}) {{
            const int64_t nr = rows - r0 < {tr} ? rows - r0 : {tr};
            for (int64_t c0 = 0; c0 < cols; c0 += {tc}) {{
                const int64_t nc = cols - c0 < {tc} ? cols - c0 : {tc};
                for (int64_t c = 0; c < nc; ++c) {{
                    const float *column = g + b + (c0 + c) * rows + r0;
                    for (int64_t r = 0; r < nr; ++r) tile[r * nc + c] = column[r];
                }}
                /* whole rows: the tile's rows are one stretch of the parameters; else one stretch a row */
                const int64_t runs = nc == cols ? 1 : nr, run = nc == cols ? nr * nc : nc;
                for (int64_t q = 0; q < runs; ++q) {{
                    const float *t = tile + q * run;
                    const int64_t start = b + (r0 + q) * cols + c0;
                    for (int64_t j = 0; j < run; ++j) {{
                        const int64_t i = start + j;
                        {_adam_element(f"t[j]{added}", _STEP)}
                    }}
                }}
            }}
        }}
    }}
}}
"""


SOURCE = f"""
#include <math.h>
#include <stdint.h>

#define MIX(r) x0 += x1; x1 = (x1 << (r)) | (x1 >> (32 - (r))); x1 ^= x0;

/* A keep probability (float32) as the bound of a uniform's 23 mantissa bits: ceil(keep * 2**23), clamped to
   [-1, 2**23 + 1], NaN 0 (_sample._threshold's arithmetic: the product is exact, a power of two). */
static inline int32_t regfn_below(float keep) {{
    const float s = keep * 8388608.0f;
    return (int32_t)ceilf(isnan(s) ? 0.0f : fminf(fmaxf(s, -1.0f), 8388609.0f));
}}

/* Every function takes its keys as regfn stores them (int64 words holding uint32 values; any integer whose low 32
   bits are the word does), cast to uint32 here.
   threefry2x32 of the counters i = start .. start + n - 1, as (i >> 32, i mod 2**32), for each of `keys` keys
   (two words each); out is row-major. bits32: y0 ^ y1 (jax.random.bits's word i), keys x n int32;
   pairs: (y0, y1) (split's new key i, fold_in's), keys x n x 2 int32; keys: the same words as regfn stores a
   key, keys x n x 2 int64. */
{_threefry_function("regfn_threefry_bits32", 1, "o[m] = (int32_t)(x0 ^ x1);")}
{_threefry_function("regfn_threefry_pairs", 2, "o[2 * m] = (int32_t)x0; o[2 * m + 1] = (int32_t)x1;")}
{_threefry_function("regfn_threefry_keys", 2, "o[2 * m] = (int64_t)x0; o[2 * m + 1] = (int64_t)x1;", "int64_t")}
/* Dropout's keep mask as float32, keys x n: 1.0f where bits32's word i has its 23 mantissa bits (word >> 9,
   jax.random.uniform's) below regfn_below(keep) of its key, else 0.0f (_sample.keep_mask). */
{
    _threefry_function(
        "regfn_threefry_keep", 1, "o[m] = (int32_t)((x0 ^ x1) >> 9) < below ? 1.0f : 0.0f;", "float", _KEEP
    )
}
/* bits32's words 0 .. rows * cols - 1 (rows * cols <= 2**32: one 32-bit counter word) of each key stored column
   by column, word r * cols + c at [c][r]: keys x cols x rows int32 (_native_cols.py). */
void regfn_threefry_bits32_cols(const int64_t *kw, int64_t keys, int64_t rows, int64_t cols, int32_t *out) {{
    for (int64_t b = 0; b < keys; ++b) {{
        const uint32_t ks[3] = {{(uint32_t)kw[2 * b], (uint32_t)kw[2 * b + 1],
                                (uint32_t)kw[2 * b] ^ (uint32_t)kw[2 * b + 1] ^ {_PARITY:#x}u}};
        for (int64_t c = 0; c < cols; ++c) {{
            int32_t *o = out + (b * cols + c) * rows;
            for (int64_t r = 0; r < rows; ++r) {{
                uint32_t x0 = ks[0];
                uint32_t x1 = (uint32_t)(r * cols + c) + ks[1];
{_threefry_rounds()}
                o[r] = (int32_t)(x0 ^ x1);
            }}
        }}
    }}
}}
/* Adam's moments and denominator in one pass over `outer` x `inner` float32 elements, with the scalars
   s[5 o .. 5 o + 4] = (w1 = 1 - b1, b2, w2 = 1 - b2, k2, eps_bc1) of outer index o:
   m' = lerp(m, g, w1) (torch's vectorised lerp: one fma), v' = fma(w2 g, g, b2 v) (torch's addcmul on this
   build), den = sqrt(v') / k2 + eps_bc1 (IEEE sqrt, which MKL's vsSqrt behind torch.sqrt misses by an ulp at
   times). m_out and v_out may be m and v (each element is read before it is written); restrict on the
   others keeps GCC's alias checks few enough to vectorise. */
{_adam_function("regfn_adam_moments", "", 5, "out[i] = den;")}
/* Adam's whole step: the moments as regfn_adam_moments's, then p' = p + (m' / den) * f (three IEEE roundings,
   as torch's div, mul and add), with a sixth scalar s[6 o + 5] = f (the learning rate's factor, -lr). */
{_adam_function("regfn_adam_step", _P, 6, _STEP)}
/* The same from the gradient of the loss plus an L2 penalty c * sum(p ** 2), g + c * (p + p) (autograd's rounding:
   optim._base.with_l2_gradient), with a seventh scalar s[7 o + 6] = c. */
{_adam_function("regfn_adam_step_l2", _P, 7, _STEP, "g[i]" + _L2)}
/* The two from a gradient stored transposed per configuration (outer x cols x rows, the parameter outer x rows x
   cols): the same arithmetic element for element, the gradient read in tiles. */
{_adam_step_transposed("regfn_adam_step_t", 6)}
{_adam_step_transposed("regfn_adam_step_l2_t", 7, _L2)}
/* Words start .. start + n - 1 (start a multiple of 4) of each of `keys` philox4x32 keys (k0, k1, s0, s1):
   word 4 j + m is word m of philox4x32-10((k0, k1), (j mod 2**32, j >> 32, s0, s1)). words: keys x n int64;
   keep: dropout's keep mask from them, as regfn_threefry_keep's. */
{_philox_function("regfn_philox_words", "o[i] = (int64_t)w[m];", "int64_t")}
{_philox_function("regfn_philox_keep", "o[i] = (int32_t)(w[m] >> 9) < below ? 1.0f : 0.0f;", "float", _KEEP)}
"""

FUNCTIONS = {
    # threefry/philox draws: (key words, keys, n, start, out)
    "regfn_threefry_bits32": ("p", "i", "i", "i", "p"),
    "regfn_threefry_pairs": ("p", "i", "i", "i", "p"),
    "regfn_threefry_keys": ("p", "i", "i", "i", "p"),
    "regfn_philox_words": ("p", "i", "i", "i", "p"),
    "regfn_threefry_bits32_cols": ("p", "i", "i", "i", "p"),  # (key words, keys, rows, cols, out)
    "regfn_threefry_keep": ("p", "i", "i", "i", "p", "p"),  # (key words, keys, n, start, keep, out)
    "regfn_philox_keep": ("p", "i", "i", "i", "p", "p"),
    "regfn_adam_moments": ("p", "p", "p", "p", "i", "i", "p", "p", "p"),  # (g, m, v, s, outer, inner, m', v', den)
    "regfn_adam_step": ("p", "p", "p", "p", "p", "i", "i", "p", "p", "p"),  # (g, m, v, p, s, outer, inner, m', v', p')
    "regfn_adam_step_l2": ("p", "p", "p", "p", "p", "i", "i", "p", "p", "p"),  # the same
    # (g, m, v, p, s, outer, rows, cols, m', v', p'), g transposed per configuration
    "regfn_adam_step_t": ("p", "p", "p", "p", "p", "i", "i", "i", "p", "p", "p"),
    "regfn_adam_step_l2_t": ("p", "p", "p", "p", "p", "i", "i", "i", "p", "p", "p"),
}
"""Every function of :data:`SOURCE` and its arguments: ``"p"`` a pointer, ``"i"`` an int64."""
