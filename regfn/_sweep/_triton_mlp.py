"""A fused Triton kernel that trains K configurations of the tutorial's MLP.

One program trains one configuration for a block of epochs with everything in
registers: the parameters and optimizer state are loaded once, each step
runs forward, dropout (threefry2x32 or philox4x32 bits, as the keys are, bit
for bit the masks of :func:`regfn.random.bernoulli`), loss, backward, penalties and the optimizer
step over tiles of rows, and only the last objective and the final parameters go
back to memory. A block of E epochs is one kernel launch, where the compiled
``vmap`` step launches many kernels every epoch (docs/benchmarks/ counts them).

Supported (everything else stays on the ``vmap`` engine): an MLP from
:func:`regfn.nn.mlp` with any number of hidden layers (the kernel's source is
generated per depth), ReLU, a single output as logits
(``"logits"``/``"identity"``), the ``"bce_logits"`` or ``"mse"`` loss, SGD
(learning rate, momentum, weight decay), Adam, AdamW, RMSprop or Adagrad
(their other settings at torch's defaults), the ``l1``, ``l2`` and
``norm2`` penalties on every parameter, dropout rate ``p`` after every hidden
layer, full batch or keyed mini-batches (one step per batch), float32.

Numbers agree with the ``vmap`` engine to float tolerance (sums run in
another order); dropout masks are the same bits. Triton is imported only when
this engine is used. On a machine without a GPU the kernel runs in Triton's
interpreter when ``TRITON_INTERPRET=1`` is in the environment before triton is
imported (slow; for tests).
"""

from __future__ import annotations

import functools
import itertools
import linecache
import textwrap

import torch
import triton
import triton.language as tl

from ..optim import optimizers

_PARITY = tl.constexpr(0x1BD11BDA)  # threefry's key-schedule constant
_UNIT = tl.constexpr(1.0 / 8388608.0)  # 2**-23: a 23-bit mantissa to a float in [0, 1)

# ----------------------------------------------------------------- threefry2x32


@triton.jit
def _rotl(x, r: tl.constexpr):
    return (x << r) | (x >> (32 - r))


@triton.jit
def _four_rounds(x0, x1, ka, kb, r0: tl.constexpr, r1: tl.constexpr, r2: tl.constexpr, r3: tl.constexpr):
    """Four rounds with rotations ``r0..r3``, then the key injection ``x0 += ka``, ``x1 += kb``."""
    x0 = x0 + x1
    x1 = _rotl(x1, r0) ^ x0
    x0 = x0 + x1
    x1 = _rotl(x1, r1) ^ x0
    x0 = x0 + x1
    x1 = _rotl(x1, r2) ^ x0
    x0 = x0 + x1
    x1 = _rotl(x1, r3) ^ x0
    return x0 + ka, x1 + kb


@triton.jit
def _threefry(k0, k1, x0, x1):
    """threefry2x32 (20 rounds) on uint32 values; ``x0``/``x1`` may be tensors."""
    k2 = k0 ^ k1 ^ _PARITY
    x0, x1 = _four_rounds(x0 + k0, x1 + k1, k1, k2 + 1, 13, 15, 26, 6)
    x0, x1 = _four_rounds(x0, x1, k2, k0 + 2, 17, 29, 16, 24)
    x0, x1 = _four_rounds(x0, x1, k0, k1 + 3, 13, 15, 26, 6)
    x0, x1 = _four_rounds(x0, x1, k1, k2 + 4, 17, 29, 16, 24)
    return _four_rounds(x0, x1, k2, k0 + 5, 13, 15, 26, 6)


@triton.jit
def _fold_in(k0, k1, data):
    """``regfn.random.fold_in``: the key ``threefry(key, (0, data))``."""
    return _threefry(k0, k1, data * 0, data)


@triton.jit
def _keep_mask(k0, k1, index, keep):
    """``uniform(key, shape).flat[index] < keep``: JAX's rule, from the bits ``y0 ^ y1``."""
    y0, y1 = _threefry(k0, k1, index * 0, index)
    return ((y0 ^ y1) >> 9).to(tl.float32) * _UNIT < keep


# ----------------------------------------------------------------- philox4x32 (Triton's own tl.philox)
# A philox4x32 key of regfn.random, (k0, k1, s0, s1), travels as two uint64 values:
# the cipher key k0 | k1 << 32 (Triton's seed) and the stream s0 | s1 << 32.


@triton.jit
def _pack(lo, hi):
    return lo.to(tl.uint64) | (hi.to(tl.uint64) << 32)


@triton.jit
def _philox_block(seed, stream, j):
    """Block ``j`` (uint32) of a packed philox key: ``tl.philox(seed, j, 0, s0, s1)``."""
    zero = j * 0
    s0 = zero + (stream & 0xFFFFFFFF).to(tl.uint32)
    s1 = zero + (stream >> 32).to(tl.uint32)
    return tl.philox(seed, j, zero, s0, s1)


@triton.jit
def _philox_fold_in(seed, stream, data):
    """``regfn.random.fold_in`` of a packed philox key: block ``data``, packed again."""
    c0, c1, c2, c3 = _philox_block(seed, stream, data)
    return _pack(c0, c1), _pack(c2, c3)


@triton.jit
def _philox_keep_mask(seed, stream, index, keep):
    """``uniform(key, shape).flat[index] < keep`` for a philox key: word ``index % 4`` of block ``index // 4``."""
    c0, c1, c2, c3 = _philox_block(seed, stream, index >> 2)
    m = index & 3
    word = tl.where(m == 0, c0, tl.where(m == 1, c1, tl.where(m == 2, c2, c3)))
    return (word >> 9).to(tl.float32) * _UNIT < keep


@triton.jit
def _load_key(key_ptr, cfg, PHILOX: tl.constexpr):
    """A configuration's dropout key: threefry's two words, or a philox key packed (see above)."""
    if PHILOX:
        w = key_ptr + cfg * 4
        k0 = tl.load(w).to(tl.uint32, bitcast=True)
        k1 = tl.load(w + 1).to(tl.uint32, bitcast=True)
        s0 = tl.load(w + 2).to(tl.uint32, bitcast=True)
        s1 = tl.load(w + 3).to(tl.uint32, bitcast=True)
        return _pack(k0, k1), _pack(s0, s1)
    else:
        w = key_ptr + cfg * 2
        return tl.load(w).to(tl.uint32, bitcast=True), tl.load(w + 1).to(tl.uint32, bitcast=True)


@triton.jit
def _key_fold_in(k0, k1, data, PHILOX: tl.constexpr):
    if PHILOX:
        return _philox_fold_in(k0, k1, data)
    else:
        return _fold_in(k0, k1, data)


# ----------------------------------------------------------------- layers


@triton.jit
def _load_matrix(ptr, ROWS: tl.constexpr, COLS: tl.constexpr, RP: tl.constexpr, CP: tl.constexpr):
    r = tl.arange(0, RP)
    c = tl.arange(0, CP)
    mask = (r[:, None] < ROWS) & (c[None, :] < COLS)
    return tl.load(ptr + r[:, None] * COLS + c[None, :], mask=mask, other=0.0)


@triton.jit
def _store_matrix(ptr, value, ROWS: tl.constexpr, COLS: tl.constexpr, RP: tl.constexpr, CP: tl.constexpr):
    r = tl.arange(0, RP)
    c = tl.arange(0, CP)
    mask = (r[:, None] < ROWS) & (c[None, :] < COLS)
    tl.store(ptr + r[:, None] * COLS + c[None, :], value, mask=mask)


@triton.jit
def _load_vector(ptr, SIZE: tl.constexpr, SP: tl.constexpr):
    i = tl.arange(0, SP)
    return tl.load(ptr + i, mask=i < SIZE, other=0.0)


@triton.jit
def _store_vector(ptr, value, SIZE: tl.constexpr, SP: tl.constexpr):
    i = tl.arange(0, SP)
    tl.store(ptr + i, value, mask=i < SIZE)


@triton.jit
def _dense(a, w, b):
    """``a @ w.T + b`` for a tile ``a`` of shape (R, IN) and ``w`` of shape (OUT, IN)."""
    return tl.sum(a[:, None, :] * w[None, :, :], axis=2) + b[None, :]


@triton.jit
def _relu_dropout(z, rows, WIDTH: tl.constexpr, WP: tl.constexpr, k0, k1, keep, safe_keep, PHILOX: tl.constexpr):
    """ReLU then inverted dropout; returns (output, keep mask)."""
    cols = tl.arange(0, WP)
    index = (rows[:, None] * WIDTH + cols[None, :]).to(tl.uint32)
    if PHILOX:
        mask = _philox_keep_mask(k0, k1, index, keep)
    else:
        mask = _keep_mask(k0, k1, index, keep)
    a = tl.maximum(z, 0.0)
    return tl.where(mask, tl.math.div_rn(a, safe_keep), 0.0), mask


@triton.jit
def _dropout_relu_backward(da, mask, z, safe_keep):
    return tl.where(mask & (z > 0.0), tl.math.div_rn(da, safe_keep), 0.0)


@triton.jit
def _penalize(w, g, l1, l2, s2, USE_L1: tl.constexpr, USE_L2: tl.constexpr, USE_NORM: tl.constexpr):
    """Adds the penalties' gradients to ``g``; returns (g, penalty value).

    ``l1 * sum|w|`` (gradient ``l1 * sign(w)``), ``l2 / 2 * sum w**2``
    (``l2 * w``) and ``s2 * ||w||_2`` (``s2 * w / ||w||``, 0 at ``w == 0``).
    """
    value = 0.0
    if USE_L1:
        value += l1 * tl.sum(tl.abs(w))
        g += l1 * tl.where(w > 0.0, 1.0, tl.where(w < 0.0, -1.0, 0.0))
    if USE_L2:
        value += 0.5 * l2 * tl.sum(w * w)
        g += l2 * w
    if USE_NORM:
        n = tl.sqrt(tl.sum(w * w))
        value += s2 * n
        g += s2 * tl.where(n > 0.0, w / tl.where(n > 0.0, n, 1.0), 0.0)
    return g, value


@triton.jit
def _sgd(w, buf, g, lr, momentum, weight_decay):
    """``torch.optim.SGD``: ``g += wd * w; buf = momentum * buf + g; w -= lr * buf``."""
    g = g + weight_decay * w
    buf = momentum * buf + g
    return w - lr * buf, buf


@triton.jit
def _adam(w, m, v, g, lr, weight_decay, k2, eps_bc1, c1, b2, c2, DECOUPLED: tl.constexpr):
    """``torch.optim.Adam`` at its default betas and eps, or AdamW's decoupled decay with ``DECOUPLED``.

    As regfn.optim computes it (``c1 = 1 - beta1``, ``c2 = 1 - beta2``):
    ``m = lerp(m, g, c1)``, ``v = beta2 v + c2 g**2``, direction
    ``m / (sqrt(v) / k2 + eps_bc1)`` with the step's ``k2 = sqrt(1 - beta2**t)
    / (1 - beta1**t)`` and ``eps_bc1 = eps (1 - beta1**t)`` (:func:`adam_scalars`).
    """
    if not DECOUPLED:
        g = g + weight_decay * w
    m = m + c1 * (g - m)  # torch.lerp's formula for a weight below 0.5
    v = v * b2 + c2 * g * g
    u = m / (tl.sqrt(v) / k2 + eps_bc1)
    if DECOUPLED:
        u = u + weight_decay * w
    return w - lr * u, m, v


@triton.jit
def _rmsprop(w, m, v, g, lr, momentum, weight_decay, alpha, c_alpha, eps):
    """``torch.optim.RMSprop`` at its default alpha and eps (``c_alpha = 1 - alpha``):
    ``v = alpha v + c_alpha g**2``, ``m = momentum * m + g / (sqrt(v) + eps)``, ``w -= lr * m``."""
    g = g + weight_decay * w
    v = v * alpha + c_alpha * g * g
    m = momentum * m + g / (tl.sqrt(v) + eps)
    return w - lr * m, m, v


@triton.jit
def _adagrad(w, v, g, lr, weight_decay, eps):
    """``torch.optim.Adagrad`` (no lr decay, its default eps): ``v += g**2``, ``w -= lr * g / (sqrt(v) + eps)``."""
    g = g + weight_decay * w
    v = v + g * g
    return w - lr * (g / (tl.sqrt(v) + eps)), v


# ----------------------------------------------------------------- the kernel, per depth
#
# Triton tensors cannot be kept in lists, so the kernel for L hidden layers is
# written out layer by layer: kernel_source(L) generates it from the templates
# below and kernel(L) compiles it once per depth. Names: layer i (1-based) maps
# S{i-1} features to S{i} (padded to P{i-1} -> P{i}) with weight w{i}, bias
# b{i}, momentum buffers m{i}/mb{i}, gradients g{i}/gb{i}; layer L+1 is the
# single output, held as a vector w{L+1} and a bias padded to 2 entries.

_HEADER = """\
@triton.jit(do_not_specialize=["epoch0", "n_epochs", "n_batches", "batch_rows"])  # one kernel for every block
def mlp_sgd_kernel(
    x_ptr, y_ptr, theta_ptr, buf_ptr, hp_ptr, key_ptr, order_ptr, bias_ptr, out_ptr,
    epoch0, n_epochs, n_batches, batch_rows,
    {sizes}, N_PARAMS: tl.constexpr, N_HP: tl.constexpr, MSE: tl.constexpr, DECOUPLED: tl.constexpr,
    USE_L1: tl.constexpr, USE_L2: tl.constexpr, USE_NORM: tl.constexpr, BLOCK_R: tl.constexpr,
    PHILOX: tl.constexpr,
):
    cfg = tl.program_id(0).to(tl.int64)
    theta = theta_ptr + cfg * N_PARAMS
    bufp = buf_ptr + cfg * {slots} * N_PARAMS  # the optimizer's state: {slots} slot(s) of N_PARAMS values
    first = tl.arange(0, 2) < 1  # the output bias's one real entry
{offsets}
{load}
    hp = hp_ptr + cfg * N_HP
    lr = tl.load(hp + 0)
    momentum = tl.load(hp + 1)
    weight_decay = tl.load(hp + 2)
    l1 = tl.load(hp + 3)
    l2 = tl.load(hp + 4)
    s2 = tl.load(hp + 5)
    keep = 1.0 - tl.load(hp + 6)
    safe_keep = tl.where(keep > 0.0, keep, 1.0)
    dk0, dk1 = _load_key(key_ptr, cfg, PHILOX)
    cols0 = tl.arange(0, P0)
    zero_u32 = tl.zeros((), tl.uint32)
    inv_n = 1.0 / batch_rows.to(tl.float32)
    objective = 0.0
    for e in range(n_epochs):
        ek0, ek1 = _key_fold_in(dk0, dk1, (epoch0 + e).to(tl.uint32), PHILOX)
        for bt in {batch_loop}:
            # step key fold_in(fold_in(dropout_key, epoch), batch); hidden layer i drops with fold_in(step key, i - 1)
            sk0, sk1 = _key_fold_in(ek0, ek1, zero_u32 + bt, PHILOX)
{keys}
{zero}
            loss = 0.0
            for r0 in range(0, batch_rows, BLOCK_R):
                rows = r0 + tl.arange(0, BLOCK_R)  # positions in the batch (the dropout counters' rows)
                valid = rows < batch_rows
                src = {rows_of_batch}
                a0 = tl.load(x_ptr + src[:, None] * S0 + cols0[None, :], mask=valid[:, None] & (cols0[None, :] < S0), other=0.0)
                y = tl.load(y_ptr + src, mask=valid, other=0.0)
{forward}
                z = tl.sum(a{L} * w{O}[None, :], axis=1) + tl.sum(b{O}, axis=0)
                if MSE:
                    diff = z - y
                    loss += tl.sum(tl.where(valid, diff * diff, 0.0), axis=0)
                    dz = tl.where(valid, 2.0 * diff * inv_n, 0.0)
                else:  # binary cross-entropy on logits
                    per_row = tl.maximum(z, 0.0) - z * y + tl.log(1.0 + tl.exp(-tl.abs(z)))
                    loss += tl.sum(tl.where(valid, per_row, 0.0), axis=0)
                    dz = tl.where(valid, (tl.sigmoid(z) - y) * inv_n, 0.0)
                g{O} += tl.sum(dz[:, None] * a{L}, axis=0)
                gb{O} += tl.where(first, tl.sum(dz, axis=0), 0.0)
                da = dz[:, None] * w{O}[None, :]
{backward}
            penalty = 0.0
{step_scalars}
{step}
            objective = loss * inv_n + penalty
{store}
    tl.store(out_ptr + cfg, objective)
"""

# The data rows of the batch's positions ``rows``, from the epoch's keyed permutation.
_ORDER_ROWS = "tl.load(order_ptr + ((cfg * n_epochs + e) * n_batches + bt) * batch_rows + rows, mask=valid, other=0)"
_OFFSETS = "    o_b{i} = o_w{i} + {w_size}\n    o_w{j} = o_b{i} + {b_size}\n"
# Parameters (w, b) and optimizer-state slots ({s}/{sb}: m/mb, the momentum or Adam's first moment;
# v/vb, Adam's second), slot k at bufp + k * N_PARAMS.
_LOAD_HIDDEN = "    {s}{i} = _load_matrix({base} + o_w{i}, S{i}, S{h}, P{i}, P{h})\n    {sb}{i} = _load_vector({base} + o_b{i}, S{i}, P{i})\n"
_LOAD_OUTPUT = (
    "    {s}{i} = _load_vector({base} + o_w{i}, S{h}, P{h})\n    {sb}{i} = _load_vector({base} + o_b{i}, 1, 2)\n"
)
_KEYS = "        lk{i}_0, lk{i}_1 = _key_fold_in(sk0, sk1, tl.full((), {h}, tl.uint32), PHILOX)\n"
_ZERO_HIDDEN = "        g{i} = tl.zeros((P{i}, P{h}), tl.float32)\n        gb{i} = tl.zeros((P{i},), tl.float32)\n"
_ZERO_OUTPUT = "        g{i} = tl.zeros((P{h},), tl.float32)\n        gb{i} = tl.zeros((2,), tl.float32)\n"
_FORWARD = """\
            z{i} = _dense(a{h}, w{i}, b{i})
            a{i}, keep{i} = _relu_dropout(z{i}, rows, S{i}, P{i}, lk{i}_0, lk{i}_1, keep, safe_keep, PHILOX)
"""
_BACKWARD = """\
            dz{i} = _dropout_relu_backward(da, keep{i}, z{i}, safe_keep)
            g{i} += tl.sum(dz{i}[:, :, None] * a{h}[:, None, :], axis=0)
            gb{i} += tl.sum(dz{i}, axis=0)
"""
_BACKWARD_INPUT = "            da = tl.sum(dz{i}[:, :, None] * w{i}[None, :, :], axis=1)\n"
_STORE_HIDDEN = "    _store_matrix({base} + o_w{i}, {s}{i}, S{i}, S{h}, P{i}, P{h})\n    _store_vector({base} + o_b{i}, {sb}{i}, S{i}, P{i})\n"
_STORE_OUTPUT = (
    "    _store_vector({base} + o_w{i}, {s}{i}, S{h}, P{h})\n    _store_vector({base} + o_b{i}, {sb}{i}, 1, 2)\n"
)
_PENALIZE = """\
        g{i}, pw = _penalize(w{i}, g{i}, l1, l2, s2, USE_L1, USE_L2, USE_NORM)
        gb{i}, pb = _penalize(b{i}, gb{i}, l1, l2, s2, USE_L1, USE_L2, USE_NORM)
        penalty += pw + pb
"""
# Per optimizer: its state slots, the scalars of a step, and one layer's update (the
# {constants} are the optimizer's defaults, read from its description: see _constants).
_OPTIMIZERS = {
    "sgd": (
        ("m",),
        "",
        """\
        w{i}, m{i} = _sgd(w{i}, m{i}, g{i}, lr, momentum, weight_decay)
        b{i}, mb{i} = _sgd(b{i}, mb{i}, gb{i}, lr, momentum, weight_decay)
""",
    ),
    "adam": (
        ("m", "v"),
        """\
        step = e * n_batches + bt  # this launch's step: the bias corrections of its Adam step count
        k2 = tl.load(bias_ptr + step * 2)
        eps_bc1 = tl.load(bias_ptr + step * 2 + 1)
""",
        """\
        w{i}, m{i}, v{i} = _adam(w{i}, m{i}, v{i}, g{i}, lr, weight_decay, k2, eps_bc1, {c1}, {beta2}, {c2}, DECOUPLED)
        b{i}, mb{i}, vb{i} = _adam(b{i}, mb{i}, vb{i}, gb{i}, lr, weight_decay, k2, eps_bc1, {c1}, {beta2}, {c2}, DECOUPLED)
""",
    ),
    "rmsprop": (
        ("m", "v"),
        "",
        """\
        w{i}, m{i}, v{i} = _rmsprop(w{i}, m{i}, v{i}, g{i}, lr, momentum, weight_decay, {alpha}, {c_alpha}, {eps})
        b{i}, mb{i}, vb{i} = _rmsprop(b{i}, mb{i}, vb{i}, gb{i}, lr, momentum, weight_decay, {alpha}, {c_alpha}, {eps})
""",
    ),
    "adagrad": (
        ("v",),
        "",
        """\
        w{i}, v{i} = _adagrad(w{i}, v{i}, g{i}, lr, weight_decay, {eps})
        b{i}, vb{i} = _adagrad(b{i}, vb{i}, gb{i}, lr, weight_decay, {eps})
""",
    ),
}


def _constants(optimizer: str) -> dict[str, str]:
    """The optimizer's built-in constants as source literals: its factory's defaults (and ``1 - `` them).

    The engine hands the kernel only ``lr``, ``momentum`` and ``weight_decay``; every other
    argument keeps the factory's default (the engine refuses a sweep that moves one).
    """
    own = optimizers()[optimizer].factory_defaults()
    out: dict[str, float] = {name: float(own[name]) for name in ("beta1", "beta2", "alpha", "eps") if name in own}
    for name, complement in (("beta1", "c1"), ("beta2", "c2"), ("alpha", "c_alpha")):
        if name in out:
            out[complement] = 1 - out[name]
    return {name: repr(value) for name, value in out.items()}


def kernel_source(hidden: int, shuffled: bool = False, optimizer: str = "sgd") -> str:
    """The Triton source of the kernel for an MLP with ``hidden`` hidden layers (and one output).

    With ``shuffled`` each epoch runs ``n_batches`` steps on the rows that
    ``order`` lists; without, one full-batch step (no batch loop at all).
    ``optimizer`` is ``"sgd"``, ``"adam"`` (Adam and AdamW: the kernel's
    ``DECOUPLED`` flag tells them apart), ``"rmsprop"`` or ``"adagrad"``.
    """
    if not (isinstance(hidden, int) and hidden >= 1):
        raise ValueError(f"hidden must be an int >= 1, got {hidden!r}")
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(_OPTIMIZERS)}, got {optimizer!r}")
    slots, step_scalars, update = _OPTIMIZERS[optimizer]
    constants = _constants(optimizer)
    out = hidden + 1  # the output layer's index
    layers = range(1, out + 1)

    def each(template_hidden: str, template_output: str | None = None, order=layers) -> str:
        return "".join(
            (template_output if i == out and template_output is not None else template_hidden).format(i=i, h=i - 1)
            for i in order
        )

    sizes = (
        ", ".join(f"S{i}: tl.constexpr" for i in range(out))
        + ", "
        + ", ".join(f"P{i}: tl.constexpr" for i in range(out))
    )
    offsets = "    o_w1 = 0\n" + "".join(
        _OFFSETS.format(
            i=i, j=i + 1, w_size=f"S{i} * S{i - 1}" if i < out else f"S{i - 1}", b_size=f"S{i}" if i < out else 1
        )
        for i in layers
    )
    backward = "".join(
        _BACKWARD.format(i=i, h=i - 1) + (_BACKWARD_INPUT.format(i=i) if i > 1 else "") for i in range(hidden, 0, -1)
    )
    inner = functools.partial(textwrap.indent, prefix="    ")  # the snippets sit in the epoch and batch loops

    def state(template_hidden: str, template_output: str) -> str:  # parameters, then each state slot
        places = [("w", "b", "theta")] + [(slot, f"{slot}b", f"bufp + {k} * N_PARAMS") for k, slot in enumerate(slots)]
        return "".join(
            (template_output if i == out else template_hidden).format(i=i, h=i - 1, s=weight, sb=bias, base=base)
            for i in layers
            for weight, bias, base in places
        )

    return _HEADER.format(
        sizes=sizes, offsets=offsets.rstrip("\n").rsplit("\n", 1)[0], L=hidden, O=out,
        batch_loop="range(n_batches)" if shuffled else "tl.static_range(1)",  # unrolled: a single step
        rows_of_batch=_ORDER_ROWS if shuffled else "rows",
        slots=len(slots),
        load=state(_LOAD_HIDDEN, _LOAD_OUTPUT).rstrip("\n"),
        step_scalars=inner(step_scalars).rstrip("\n"),
        keys=inner(each(_KEYS, order=range(1, out))).rstrip("\n"),
        zero=inner(each(_ZERO_HIDDEN, _ZERO_OUTPUT)).rstrip("\n"),
        forward=inner(each(_FORWARD, order=range(1, out))).rstrip("\n"),
        backward=inner(backward).rstrip("\n"),
        step=inner("".join((_PENALIZE + update).format(i=i, **constants) for i in layers)).rstrip("\n"),
        store=state(_STORE_HIDDEN, _STORE_OUTPUT).rstrip("\n"),
    )  # fmt: skip


@functools.cache
def kernel(hidden: int, shuffled: bool = False, optimizer: str = "sgd"):
    """The jitted kernel for ``hidden`` hidden layers (generated once per depth, batching and optimizer)."""
    source = kernel_source(hidden, shuffled, optimizer)
    filename = (
        f"<regfn._sweep._triton_mlp kernel, {hidden} hidden layers, {optimizer}{', mini-batches' if shuffled else ''}>"
    )
    # Triton reads a kernel's source through inspect/linecache; register the generated text there.
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace = dict(globals())
    exec(compile(source, filename, "exec"), namespace)
    return namespace["mlp_sgd_kernel"]


# ----------------------------------------------------------------- launching


# Rows per tile (None: auto_block_rows) and warps per program. Not tuned on a GPU yet:
# benchmarks/sweep.py --triton-tiles times other choices side by side.
BLOCK_ROWS: int | None = None
NUM_WARPS = 4
# A layer's tile product (rows x out x in, padded) per program, at most: 32 floats per thread of
# 4 warps. Compiled for sm_90 by Triton 3.9 (benchmarks/triton_kernel_info.py) this gives the
# tutorial's 8-6-4-1 MLP 64-row tiles (139 registers, no spills) and 8-32-32-1 4-row tiles (215,
# none); wider layers spill: the kernel is meant for narrow MLPs, the sweeps' usual subject.
_TILE_BUDGET = 32 * 128


def padded(n: int) -> int:
    """The power of two (at least 2) a dimension of ``n`` is padded to in the kernel."""
    return max(2, 1 << (n - 1).bit_length())


def auto_block_rows(sizes) -> int:
    """Rows per tile for an MLP of these widths: the most (a power of two, 2 to 128) within the budget."""
    widest = max(padded(a) * padded(b) for a, b in itertools.pairwise(sizes))
    rows = max(2, min(128, _TILE_BUDGET // widest))
    return 1 << (rows.bit_length() - 1)


def adam_scalars(first_step: int, steps: int, device) -> torch.Tensor:
    """``(k2, eps_bc1)`` of Adam steps ``first_step + 1 ..``, float64 then float32, as regfn.optim.adam."""
    own = optimizers()["adam"].factory_defaults()
    t = torch.arange(first_step + 1, first_step + steps + 1, dtype=torch.float64)
    bc1, bc2_sqrt = 1 - own["beta1"] ** t, torch.sqrt(1 - own["beta2"] ** t)
    return torch.stack([bc2_sqrt / bc1, own["eps"] * bc1], dim=1).to(device=device, dtype=torch.float32).contiguous()


def train_epochs(theta, buf, hp, key_words, x, y, epoch0: int, n_epochs: int, sizes, *, mse: bool,
                 penalties: tuple[str, ...], order=None, optimizer: str = "sgd", block_rows: int | None = None,
                 num_warps: int | None = None):  # fmt: skip
    """Run ``n_epochs`` epochs from ``epoch0`` for every configuration; returns the last step's objectives.

    ``sizes`` are the MLP's widths, input first, ending in 1. ``theta`` and
    ``buf`` (float32, shape (K, n_params)) are updated in place; ``hp`` is
    (K, len(regfn._sweep._triton.HP_COLUMNS)) float32, ``key_words`` (K, 2) int32 (threefry2x32
    dropout keys) or (K, 4) (philox4x32), ``x``
    (n, sizes[0]) and ``y`` (n,) float32, all contiguous on one device.
    ``order`` is ``None`` for full-batch steps, else the data rows of every
    mini-batch, int32 of shape (K, n_epochs, n_batches, batch_size) (one
    step per batch, as :func:`regfn.data.batches` cuts them). ``optimizer``
    is ``"sgd"`` or ``"adagrad"`` (``buf``: the momentum or the sum of
    squares, shape (K, n_params)), ``"adam"``, ``"adamw"`` or ``"rmsprop"``
    (``buf``: two slots, shape (K, 2, n_params): the moments; or RMSprop's
    momentum, then its square average).
    ``block_rows`` (a power of two) and ``num_warps`` default to
    :data:`BLOCK_ROWS` (else :func:`auto_block_rows`) and :data:`NUM_WARPS`.
    """
    k = theta.shape[0]
    widths = tuple(sizes[:-1])  # S0 .. SL; the output width is 1
    out = torch.empty(k, dtype=torch.float32, device=theta.device)
    n_batches, batch_rows = (1, x.shape[0]) if order is None else tuple(order.shape[2:])
    adam = optimizer in ("adam", "adamw")
    first_step = epoch0 * n_batches  # steps taken before this launch
    bias = adam_scalars(first_step, n_epochs * n_batches, theta.device) if adam else hp
    kernel(len(widths) - 1, order is not None, "adam" if adam else optimizer)[(k,)](
        x, y, theta, buf, hp, key_words, key_words if order is None else order, bias, out,
        epoch0, n_epochs, n_batches, batch_rows,
        **{f"S{i}": w for i, w in enumerate(widths)}, **{f"P{i}": padded(w) for i, w in enumerate(widths)},
        N_PARAMS=theta.shape[1], N_HP=hp.shape[1], MSE=mse, DECOUPLED=optimizer == "adamw",
        USE_L1="l1" in penalties, USE_L2="l2" in penalties, USE_NORM="norm2" in penalties,
        BLOCK_R=block_rows or BLOCK_ROWS or auto_block_rows(sizes), num_warps=num_warps or NUM_WARPS,
        PHILOX=key_words.shape[1] == 4,
    )  # fmt: skip
    return out
