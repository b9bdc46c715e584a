"""Generate ``flax_dropout.json``: golden vectors of ``flax.linen.Dropout``.

Run from the repository root with jax and flax installed::

    python tests/golden/make_flax_golden.py

Each case records the input, Flax's output, the ``'dropout'`` rng seed, the
module path and call count of the layer, and the key the layer actually drew
(captured by wrapping ``jax.random.bernoulli`` as ``flax.linen.stochastic``
calls it), so ``tests/test_nn.py`` can check ``regfn.nn.flax_dropout_key`` and
``regfn.nn.dropout`` without Flax. ``tests/test_nn.py`` also imports
:func:`cases` to compare against live Flax with other seeds.
"""

from __future__ import annotations

import json
import pathlib

import flax
import flax.linen as nn
import flax.linen.stochastic as stochastic
import jax
import jax.numpy as jnp
import numpy as np

OUT = pathlib.Path(__file__).with_name("flax_dropout.json")


class _Spy:
    """Records the key of every ``bernoulli`` call flax's Dropout makes."""

    def __init__(self):
        self.keys: list[list[int]] = []

    def __enter__(self):
        self.orig = stochastic.random.bernoulli

        def bernoulli(rng, p, shape):
            data = jax.random.key_data(rng) if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key) else rng
            self.keys.append([int(v) for v in np.asarray(data)])
            return self.orig(rng, p, shape)

        stochastic.random.bernoulli = bernoulli
        return self

    def __exit__(self, *exc):
        stochastic.random.bernoulli = self.orig


class _Two(nn.Module):
    """Two Dropout layers on the same input: paths Dropout_0 and Dropout_1."""

    rate: float

    @nn.compact
    def __call__(self, x):
        return nn.Dropout(self.rate, deterministic=False)(x), nn.Dropout(self.rate, deterministic=False)(x)


class _Shared(nn.Module):
    """One Dropout layer called twice: counts 1 and 2."""

    rate: float

    @nn.compact
    def __call__(self, x):
        d = nn.Dropout(self.rate, deterministic=False)
        return d(x), d(x)


class Block(nn.Module):
    rate: float

    @nn.compact
    def __call__(self, x):
        return nn.Dropout(self.rate, deterministic=False)(x)


class _Nested(nn.Module):
    """Dropout inside submodules: paths Block_0/Dropout_0 and Block_1/Dropout_0."""

    rate: float

    @nn.compact
    def __call__(self, x):
        return Block(self.rate)(x), Block(self.rate)(x)


def _record(kind, seed, rate, x, outs, keys, paths_counts, broadcast_dims=(), rate_is_array=False):
    return [
        {
            "kind": kind,
            "seed": seed,
            "rate": float(rate),
            "rate_is_array": rate_is_array,
            "broadcast_dims": list(broadcast_dims),
            "dtype": str(x.dtype),
            "shape": list(x.shape),
            "path": list(path),
            "count": count,
            "flax_key": key,
            "x": np.asarray(x, np.float64).ravel().tolist(),
            "out": np.asarray(out, np.float64).ravel().tolist(),
        }
        for out, key, (path, count) in zip(outs, keys, paths_counts, strict=True)
    ]


def cases(seeds=(0, 1)) -> list[dict]:
    """All golden cases for the given ``'dropout'`` rng seeds."""
    records = []
    for seed in seeds:
        rngs = {"dropout": jax.random.key(seed)}
        data_key = jax.random.fold_in(jax.random.key(1000), seed)
        x = jax.random.normal(data_key, (6, 8), jnp.float32)
        for rate in (0.1, 0.25, 0.5, 0.7, 0.9, 0.0749):
            with _Spy() as spy:
                out = nn.Dropout(rate, deterministic=False).apply({}, x, rngs=rngs)
            records += _record("top", seed, rate, x, [out], spy.keys, [((), 1)])
        # a float32 array rate: Flax computes keep = 1 - rate in float32
        with _Spy() as spy:
            out = nn.Dropout(jnp.float32(0.0749), deterministic=False).apply({}, x, rngs=rngs)
        records += _record("top", seed, 0.0749, x, [out], spy.keys, [((), 1)], rate_is_array=True)
        x3 = jax.random.normal(data_key, (3, 4, 5), jnp.float32)
        for dims in ((0,), (-1,), (0, 2)):
            with _Spy() as spy:
                out = nn.Dropout(0.4, broadcast_dims=dims, deterministic=False).apply({}, x3, rngs=rngs)
            records += _record("broadcast", seed, 0.4, x3, [out], spy.keys, [((), 1)], dims)
        with _Spy() as spy:
            outs = _Two(0.3).apply({}, x, rngs=rngs)
        records += _record("two", seed, 0.3, x, outs, spy.keys, [(("Dropout_0",), 1), (("Dropout_1",), 1)])
        with _Spy() as spy:
            outs = _Shared(0.6).apply({}, x, rngs=rngs)
        records += _record("shared", seed, 0.6, x, outs, spy.keys, [(("Dropout_0",), 1), (("Dropout_0",), 2)])
        with _Spy() as spy:
            outs = _Nested(0.5).apply({}, x, rngs=rngs)
        paths = [(("Block_0", "Dropout_0"), 1), (("Block_1", "Dropout_0"), 1)]
        records += _record("nested", seed, 0.5, x, outs, spy.keys, paths)
        x16 = x.astype(jnp.float16)
        with _Spy() as spy:
            out = nn.Dropout(0.3, deterministic=False).apply({}, x16, rngs=rngs)
        records += _record("top", seed, 0.3, x16, [out], spy.keys, [((), 1)])
    return records


def main() -> None:
    payload = {
        "generator": "tests/golden/make_flax_golden.py",
        "jax_version": jax.__version__,
        "flax_version": flax.__version__,
        "flax_fix_rng_separator": bool(flax.config.flax_fix_rng_separator),
        "cases": cases(),
    }
    OUT.write_text(json.dumps(payload, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {len(payload['cases'])} cases to {OUT}")


if __name__ == "__main__":
    main()
