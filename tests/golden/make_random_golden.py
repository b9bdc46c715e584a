"""Generate tests/golden/jax_random.json from a real JAX install.

Run from the repository root with jax installed (CPU is fine):

    python tests/golden/make_random_golden.py

The JSON records the jax version; tests/test_random.py compares regfn.random
against it on every run, with or without jax.
"""

from __future__ import annotations

import json
import pathlib

import jax

jax.config.update("jax_threefry_partitionable", True)
jax.config.update("jax_enable_x64", False)

import jax.numpy as jnp  # noqa: E402

try:  # the cipher itself is not public API; its module moved between releases
    from jax._src.random.threefry2x32 import threefry_2x32
except ImportError:  # jax < 0.8
    from jax._src.prng import threefry_2x32
import numpy as np  # noqa: E402

OUT = pathlib.Path(__file__).with_name("jax_random.json")
SEEDS = [0, 1, 42, 2**31 - 1, 2**32 + 5, -1]
SHAPES = [[], [5], [2, 3], [1000]]

# Random123's known-answer tests for threefry2x32 with 20 rounds:
# (key words, counter words) -> expected output words.
KAT = [
    ([0x00000000, 0x00000000], [0x00000000, 0x00000000]),
    ([0xFFFFFFFF, 0xFFFFFFFF], [0xFFFFFFFF, 0xFFFFFFFF]),
    ([0x13198A2E, 0x03707344], [0x243F6A88, 0x85A308D3]),
]


def ints(a) -> list:
    return np.asarray(a).astype(np.int64).tolist()


def floats(a) -> list:
    return np.asarray(a, dtype=np.float32).view(np.int32).astype(np.int64).tolist()


def main() -> None:
    out: dict = {"jax_version": jax.__version__, "threefry_partitionable": True, "kat": [], "seeds": []}
    for k, c in KAT:
        y = threefry_2x32(jnp.array(k, jnp.uint32), jnp.array(c, jnp.uint32))
        out["kat"].append({"key": k, "count": c, "out": ints(y)})
    for seed in SEEDS:
        key = jax.random.PRNGKey(seed)
        entry = {
            "seed": seed,
            "key": ints(key),
            "split2": ints(jax.random.split(key, 2)),
            "split3": ints(jax.random.split(key, 3)),
            "split_2x3": ints(jax.random.split(key, (2, 3))),
            "fold_in": {str(d): ints(jax.random.fold_in(key, d)) for d in [0, 1, 7, 2**31 - 1, 2**32 - 1]},
            "bits": {},
            "uniform": {},
            "uniform_range": {},
            "bernoulli": {},
            "normal": {},
        }
        for shape in SHAPES:
            name = "x".join(map(str, shape)) or "scalar"
            shp = tuple(shape)
            entry["bits"][name] = ints(jax.random.bits(key, shp))
            # float32 results are stored as their int32 bit patterns, for exact comparison.
            entry["uniform"][name] = floats(jax.random.uniform(key, shp))
            entry["uniform_range"][name] = floats(jax.random.uniform(key, shp, minval=-2.5, maxval=7.0))
            entry["bernoulli"][name] = ints(jax.random.bernoulli(key, 0.3, shp))
            entry["normal"][name] = floats(jax.random.normal(key, shp))
        out["seeds"].append(entry)
    OUT.write_text(json.dumps(out, separators=(",", ":")))
    print(f"wrote {OUT} (jax {jax.__version__})")


if __name__ == "__main__":
    main()
