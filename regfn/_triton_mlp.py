"""A fused Triton kernel that trains K configurations of the tutorial's MLP.

One program trains one configuration for a block of epochs with everything in
registers: the parameters and momentum buffers are loaded once, each epoch
runs forward, dropout (threefry bits, bit for bit the masks of
:func:`regfn.random.bernoulli`), loss, backward, penalties and the SGD step
over tiles of rows, and only the last objective and the final parameters go
back to memory. A block of E epochs is one kernel launch, against about 20
launches per epoch for the compiled ``vmap`` step.

Supported (everything else stays on the ``vmap`` engine): an MLP from
:func:`regfn.nn.mlp` with two hidden layers, ReLU, a single output as logits
(``"logits"``/``"identity"``), the ``"bce_logits"`` or ``"mse"`` loss, SGD
with learning rate, momentum and weight decay, the ``l1``, ``l2`` and
``norm2`` penalties on every parameter, dropout rate ``p`` after both hidden
layers, full batch, float32.

Numbers agree with the ``vmap`` engine to float tolerance (sums run in
another order); dropout masks are the same bits. Triton is imported only when
this engine is used. On a machine without a GPU the kernel runs in Triton's
interpreter when ``TRITON_INTERPRET=1`` is set before the first use (slow; for
tests).
"""

from __future__ import annotations

import triton
import triton.language as tl

_PARITY = tl.constexpr(0x1BD11BDA)  # threefry's key-schedule constant
_UNIT = tl.constexpr(1.0 / 8388608.0)  # 2**-23: a 23-bit mantissa to a float in [0, 1)

# Columns of the hyperparameter table the kernel reads, one row per configuration.
HP_COLUMNS = ("lr", "momentum", "weight_decay", "l1", "l2", "norm2", "p")


# ----------------------------------------------------------------- threefry2x32


@triton.jit
def _rotl(x, r: tl.constexpr):
    return (x << r) | (x >> (32 - r))


@triton.jit
def _four_rounds(x0, x1, r0: tl.constexpr, r1: tl.constexpr, r2: tl.constexpr, r3: tl.constexpr):
    x0 = x0 + x1
    x1 = _rotl(x1, r0) ^ x0
    x0 = x0 + x1
    x1 = _rotl(x1, r1) ^ x0
    x0 = x0 + x1
    x1 = _rotl(x1, r2) ^ x0
    x0 = x0 + x1
    x1 = _rotl(x1, r3) ^ x0
    return x0, x1


@triton.jit
def _threefry(k0, k1, x0, x1):
    """threefry2x32 (20 rounds) on uint32 values; ``x0``/``x1`` may be tensors."""
    k2 = k0 ^ k1 ^ _PARITY
    x0 = x0 + k0
    x1 = x1 + k1
    x0, x1 = _four_rounds(x0, x1, 13, 15, 26, 6)
    x0 = x0 + k1
    x1 = x1 + (k2 + 1)
    x0, x1 = _four_rounds(x0, x1, 17, 29, 16, 24)
    x0 = x0 + k2
    x1 = x1 + (k0 + 2)
    x0, x1 = _four_rounds(x0, x1, 13, 15, 26, 6)
    x0 = x0 + k0
    x1 = x1 + (k1 + 3)
    x0, x1 = _four_rounds(x0, x1, 17, 29, 16, 24)
    x0 = x0 + k1
    x1 = x1 + (k2 + 4)
    x0, x1 = _four_rounds(x0, x1, 13, 15, 26, 6)
    x0 = x0 + k2
    x1 = x1 + (k0 + 5)
    return x0, x1


@triton.jit
def _fold_in(k0, k1, data):
    """``regfn.random.fold_in``: the key ``threefry(key, (0, data))``."""
    return _threefry(k0, k1, data * 0, data)


@triton.jit
def _keep_mask(k0, k1, index, keep):
    """``uniform(key, shape).flat[index] < keep``: JAX's rule, from the bits ``y0 ^ y1``."""
    y0, y1 = _threefry(k0, k1, index * 0, index)
    return ((y0 ^ y1) >> 9).to(tl.float32) * _UNIT < keep


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
def _relu_dropout(z, rows, WIDTH: tl.constexpr, WP: tl.constexpr, k0, k1, keep, safe_keep):
    """ReLU then inverted dropout; returns (output, keep mask)."""
    cols = tl.arange(0, WP)
    index = (rows[:, None] * WIDTH + cols[None, :]).to(tl.uint32)
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


# ----------------------------------------------------------------- the kernel


@triton.jit(do_not_specialize=["epoch0", "n_epochs", "n_rows"])  # one compiled kernel for every block
def mlp2_sgd_kernel(
    x_ptr, y_ptr, theta_ptr, buf_ptr, hp_ptr, key_ptr, out_ptr,
    epoch0, n_epochs, n_rows,
    D0: tl.constexpr, H1: tl.constexpr, H2: tl.constexpr,
    D0P: tl.constexpr, H1P: tl.constexpr, H2P: tl.constexpr,
    N_PARAMS: tl.constexpr, N_HP: tl.constexpr, MSE: tl.constexpr,
    USE_L1: tl.constexpr, USE_L2: tl.constexpr, USE_NORM: tl.constexpr,
    BLOCK_R: tl.constexpr,
):  # fmt: skip
    """Train configuration ``program_id(0)`` for ``n_epochs`` epochs from ``epoch0``.

    ``theta``/``buf`` hold each configuration's parameters/momentum buffers
    flat, in ``mlp_init``'s order (fc1.weight, fc1.bias, fc2.weight, ...);
    ``hp`` one row of :data:`HP_COLUMNS`; ``key`` the dropout key's two words
    (int32 bits); ``out`` receives the last epoch's objective.
    """
    cfg = tl.program_id(0).to(tl.int64)
    theta = theta_ptr + cfg * N_PARAMS
    bufp = buf_ptr + cfg * N_PARAMS
    o_b1 = H1 * D0
    o_w2 = o_b1 + H1
    o_b2 = o_w2 + H2 * H1
    o_w3 = o_b2 + H2
    o_b3 = o_w3 + H2
    w1 = _load_matrix(theta, H1, D0, H1P, D0P)
    b1 = _load_vector(theta + o_b1, H1, H1P)
    w2 = _load_matrix(theta + o_w2, H2, H1, H2P, H1P)
    b2 = _load_vector(theta + o_b2, H2, H2P)
    w3 = _load_vector(theta + o_w3, H2, H2P)
    b3 = _load_vector(theta + o_b3, 1, 2)  # the output bias, padded to 2 (reductions need tensors)
    m1 = _load_matrix(bufp, H1, D0, H1P, D0P)
    mb1 = _load_vector(bufp + o_b1, H1, H1P)
    m2 = _load_matrix(bufp + o_w2, H2, H1, H2P, H1P)
    mb2 = _load_vector(bufp + o_b2, H2, H2P)
    m3 = _load_vector(bufp + o_w3, H2, H2P)
    mb3 = _load_vector(bufp + o_b3, 1, 2)
    first = tl.arange(0, 2) < 1

    hp = hp_ptr + cfg * N_HP
    lr = tl.load(hp + 0)
    momentum = tl.load(hp + 1)
    weight_decay = tl.load(hp + 2)
    l1 = tl.load(hp + 3)
    l2 = tl.load(hp + 4)
    s2 = tl.load(hp + 5)
    keep = 1.0 - tl.load(hp + 6)
    safe_keep = tl.where(keep > 0.0, keep, 1.0)
    dk0 = tl.load(key_ptr + cfg * 2).to(tl.uint32, bitcast=True)
    dk1 = tl.load(key_ptr + cfg * 2 + 1).to(tl.uint32, bitcast=True)

    c0 = tl.arange(0, D0P)
    inv_n = 1.0 / n_rows.to(tl.float32)
    objective = 0.0
    for e in range(n_epochs):
        # step_key = fold_in(fold_in(dropout_key, epoch), 0); layer i: fold_in(step_key, i)
        ek0, ek1 = _fold_in(dk0, dk1, (epoch0 + e).to(tl.uint32))
        sk0, sk1 = _fold_in(ek0, ek1, tl.zeros((), tl.uint32))
        a0, a1 = _fold_in(sk0, sk1, tl.zeros((), tl.uint32))
        c0k, c1k = _fold_in(sk0, sk1, tl.full((), 1, tl.uint32))

        g1 = tl.zeros((H1P, D0P), tl.float32)
        gb1 = tl.zeros((H1P,), tl.float32)
        g2 = tl.zeros((H2P, H1P), tl.float32)
        gb2 = tl.zeros((H2P,), tl.float32)
        g3 = tl.zeros((H2P,), tl.float32)
        gb3 = tl.zeros((2,), tl.float32)
        loss = 0.0
        for r0 in range(0, n_rows, BLOCK_R):
            rows = r0 + tl.arange(0, BLOCK_R)
            valid = rows < n_rows
            x = tl.load(x_ptr + rows[:, None] * D0 + c0[None, :], mask=valid[:, None] & (c0[None, :] < D0), other=0.0)
            y = tl.load(y_ptr + rows, mask=valid, other=0.0)
            z1 = _dense(x, w1, b1)
            h1, k1m = _relu_dropout(z1, rows, H1, H1P, a0, a1, keep, safe_keep)
            z2 = _dense(h1, w2, b2)
            h2, k2m = _relu_dropout(z2, rows, H2, H2P, c0k, c1k, keep, safe_keep)
            z = tl.sum(h2 * w3[None, :], axis=1) + tl.sum(b3, axis=0)
            if MSE:
                diff = z - y
                loss += tl.sum(tl.where(valid, diff * diff, 0.0), axis=0)
                dz = tl.where(valid, 2.0 * diff * inv_n, 0.0)
            else:
                per_row = tl.maximum(z, 0.0) - z * y + tl.log(1.0 + tl.exp(-tl.abs(z)))
                loss += tl.sum(tl.where(valid, per_row, 0.0), axis=0)
                dz = tl.where(valid, (tl.sigmoid(z) - y) * inv_n, 0.0)
            g3 += tl.sum(dz[:, None] * h2, axis=0)
            gb3 += tl.where(first, tl.sum(dz, axis=0), 0.0)
            dz2 = _dropout_relu_backward(dz[:, None] * w3[None, :], k2m, z2, safe_keep)
            g2 += tl.sum(dz2[:, :, None] * h1[:, None, :], axis=0)
            gb2 += tl.sum(dz2, axis=0)
            dh1 = tl.sum(dz2[:, :, None] * w2[None, :, :], axis=1)
            dz1 = _dropout_relu_backward(dh1, k1m, z1, safe_keep)
            g1 += tl.sum(dz1[:, :, None] * x[:, None, :], axis=0)
            gb1 += tl.sum(dz1, axis=0)

        g1, p1 = _penalize(w1, g1, l1, l2, s2, USE_L1, USE_L2, USE_NORM)
        gb1, p2 = _penalize(b1, gb1, l1, l2, s2, USE_L1, USE_L2, USE_NORM)
        g2, p3 = _penalize(w2, g2, l1, l2, s2, USE_L1, USE_L2, USE_NORM)
        gb2, p4 = _penalize(b2, gb2, l1, l2, s2, USE_L1, USE_L2, USE_NORM)
        g3, p5 = _penalize(w3, g3, l1, l2, s2, USE_L1, USE_L2, USE_NORM)
        gb3, p6 = _penalize(b3, gb3, l1, l2, s2, USE_L1, USE_L2, USE_NORM)
        objective = loss * inv_n + (p1 + p2 + p3 + p4 + p5 + p6)

        w1, m1 = _sgd(w1, m1, g1, lr, momentum, weight_decay)
        b1, mb1 = _sgd(b1, mb1, gb1, lr, momentum, weight_decay)
        w2, m2 = _sgd(w2, m2, g2, lr, momentum, weight_decay)
        b2, mb2 = _sgd(b2, mb2, gb2, lr, momentum, weight_decay)
        w3, m3 = _sgd(w3, m3, g3, lr, momentum, weight_decay)
        b3, mb3 = _sgd(b3, mb3, gb3, lr, momentum, weight_decay)

    _store_matrix(theta, w1, H1, D0, H1P, D0P)
    _store_vector(theta + o_b1, b1, H1, H1P)
    _store_matrix(theta + o_w2, w2, H2, H1, H2P, H1P)
    _store_vector(theta + o_b2, b2, H2, H2P)
    _store_vector(theta + o_w3, w3, H2, H2P)
    _store_vector(theta + o_b3, b3, 1, 2)
    _store_matrix(bufp, m1, H1, D0, H1P, D0P)
    _store_vector(bufp + o_b1, mb1, H1, H1P)
    _store_matrix(bufp + o_w2, m2, H2, H1, H2P, H1P)
    _store_vector(bufp + o_b2, mb2, H2, H2P)
    _store_vector(bufp + o_w3, m3, H2, H2P)
    _store_vector(bufp + o_b3, mb3, 1, 2)
    tl.store(out_ptr + cfg, objective)


# ----------------------------------------------------------------- launching


# Rows per tile and warps per program. Not tuned on a GPU yet: benchmarks/sweep.py --triton-tiles
# times other choices side by side.
BLOCK_ROWS = 64
NUM_WARPS = 4


def padded(n: int) -> int:
    """The power of two (at least 2) a dimension of ``n`` is padded to in the kernel."""
    return max(2, 1 << (n - 1).bit_length())


def train_epochs(theta, buf, hp, key_words, x, y, epoch0: int, n_epochs: int, sizes, *, mse: bool,
                 penalties: tuple[str, ...], block_rows: int | None = None, num_warps: int | None = None):  # fmt: skip
    """Run ``n_epochs`` epochs from ``epoch0`` for every configuration; returns the last objectives.

    ``theta`` and ``buf`` (float32, shape (K, n_params)) are updated in place;
    ``hp`` is (K, len(HP_COLUMNS)) float32, ``key_words`` (K, 2) int32, ``x``
    (n, sizes[0]) and ``y`` (n,) float32, all contiguous on one device.
    ``block_rows`` (a power of two) and ``num_warps`` default to
    :data:`BLOCK_ROWS` and :data:`NUM_WARPS`.
    """
    import torch

    d0, h1, h2, _ = sizes
    k = theta.shape[0]
    out = torch.empty(k, dtype=torch.float32, device=theta.device)
    mlp2_sgd_kernel[(k,)](
        x, y, theta, buf, hp, key_words, out,
        epoch0, n_epochs, x.shape[0],
        D0=d0, H1=h1, H2=h2, D0P=padded(d0), H1P=padded(h1), H2P=padded(h2),
        N_PARAMS=theta.shape[1], N_HP=hp.shape[1], MSE=mse,
        USE_L1="l1" in penalties, USE_L2="l2" in penalties, USE_NORM="norm2" in penalties,
        BLOCK_R=block_rows or BLOCK_ROWS, num_warps=num_warps or NUM_WARPS,
    )  # fmt: skip
    return out
