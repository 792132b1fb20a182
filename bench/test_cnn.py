"""pytest-benchmark: a small CNN written by hand in numpy, checked whole and layer by layer.

``python -m pytest bench/test_cnn.py``. The model: conv(3->8, 3x3) - relu - pool - conv(8->24,
3x3) - relu - pool - dense(6144->10) - softmax cross-entropy on two 3x64x64 images (63,426
parameters), im2col convolutions, forward/backward pairs in the numpy-course style. Pooling
is 2x2 *average* pooling, kept so that the recorded numbers stay comparable (a max-pool's tied
zero windows are kinks at the point, which the check now judges one-sided).

Two rows in one group, a full central check of every parameter:

- **whole model**: ``fastgc.check(cost, grads, params, X, y, engine="loop")``, one forward pass
  of the model per perturbed point. Too slow to run whole here (minutes): timed on a seeded
  stratified ``subset`` of ``FASTGC_BENCH_CNN_SUBSET`` coordinates (default 600, at least 8
  per block) and extrapolated by ``P / subset`` (``extra_info["extrapolated_s"]``); the
  verdict of that subset is asserted.
- **layer by layer**: ``fastgc.check_model(layers, X, y, loss=..., grads=..., dX=...)``: every
  parameter of every layer at its recorded input, each layer's input gradient at 256 seeded
  coordinates, the loss's gradient, and the chain check; the verdict is asserted.

``extra_info["speedup"]`` on the layer-by-layer row is the extrapolated whole-model time over
its median. Its ``extra_info["floor_s"]`` is the floor of a layer-by-layer check: the layer
forward passes it must run (two per parameter, two per checked input coordinate), each
layer's forward timed bare in the same run at the input the model gives it (in C order, as
``check_model`` records it; ``floor_user_layout_s`` at the layout the model itself produces);
``ratio_to_floor`` is the median over it. Both are printed next to the time.

Times are this process's CPU time (``time.process_time``): on the shared 2-core VM other
processes' load moves wall time far more than CPU time. Run with BLAS on one thread
(``OMP_NUM_THREADS=1``).
"""

import os
import time

import numpy as np
import pytest

import fastgc

ROUNDS = int(os.environ.get("FASTGC_BENCH_ROUNDS", "1"))  # a layered call is ~1 min here
SUBSET = int(os.environ.get("FASTGC_BENCH_CNN_SUBSET", "600"))


# -- the model (what a user writes) --------------------------------------------------------------
def _im2col(x, k, pad):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    cols = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    # (n, c, ho, wo, k, k) -> (n * ho * wo, c * k * k)
    return cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * k * k), (ho, wo)


def conv_forward(x, w, b):
    f, c, k, _ = w.shape
    cols, (ho, wo) = _im2col(x, k, k // 2)
    out = cols @ w.reshape(f, -1).T + b
    return out.reshape(x.shape[0], ho, wo, f).transpose(0, 3, 1, 2), (x, w, cols)


def conv_backward(dout, cache):
    x, w, cols = cache
    f, c, k, _ = w.shape
    n, _, h, wd = x.shape
    d = dout.transpose(0, 2, 3, 1).reshape(-1, f)
    dw = (d.T @ cols).reshape(w.shape)
    dcols = (d @ w.reshape(f, -1)).reshape(n, h, wd, c, k, k)
    p = k // 2
    dxp = np.zeros((n, c, h + 2 * p, wd + 2 * p))
    for i in range(k):  # col2im: each kernel offset adds its shifted slice
        for j in range(k):
            dxp[:, :, i:i + h, j:j + wd] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, p:p + h, p:p + wd], dw, d.sum(axis=0)


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(dout, x):
    return dout * (x > 0)


def pool_forward(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5)), x.shape


def pool_backward(dout, shape):
    return np.repeat(np.repeat(dout, 2, axis=2), 2, axis=3) / 4


def dense_forward(x, w, b):
    return x.reshape(len(x), -1) @ w + b, (x, w)


def dense_backward(dout, cache):
    x, w = cache
    return (dout @ w.T).reshape(x.shape), x.reshape(len(x), -1).T @ dout, dout.sum(axis=0)


def softmax_loss(scores, y):
    shifted = scores - scores.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(y)
    d = np.exp(logp)
    d[np.arange(n), y] -= 1
    return -logp[np.arange(n), y].sum() / n, d / n


def build(seed=0, n=2, size=64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3, size, size))
    y = rng.integers(0, 10, size=n)
    he = lambda *s: rng.normal(size=s) * np.sqrt(2 / np.prod(s[1:]))  # noqa: E731
    params = {"conv1": (he(8, 3, 3, 3), rng.normal(size=8) * 0.1),
              "conv2": (he(24, 8, 3, 3), rng.normal(size=24) * 0.1),
              "dense": (he(10, 24 * (size // 4) ** 2).T, rng.normal(size=10) * 0.1)}
    return X, y, params


# (parameter key, forward, backward), first layer first
PAIRS = [("conv1", conv_forward, conv_backward), (None, relu_forward, relu_backward),
         (None, pool_forward, pool_backward), ("conv2", conv_forward, conv_backward),
         (None, relu_forward, relu_backward), (None, pool_forward, pool_backward),
         ("dense", dense_forward, dense_backward)]


def model_cost(params, X, y):
    out = X
    for key, forward, _ in PAIRS:
        out = forward(out, *params.get(key, ()))[0]
    return softmax_loss(out, y)[0]


def model_grads(params, X, y):
    """The model's own backward: ({key: (dw, db)}, dX)."""
    out, caches = X, []
    for key, forward, _ in PAIRS:
        out, cache = forward(out, *params.get(key, ()))
        caches.append(cache)
    dout = softmax_loss(out, y)[1]
    grads = {}
    for (key, _, backward), cache in zip(reversed(PAIRS), reversed(caches), strict=True):
        back = backward(dout, cache)
        if key is None:
            dout = back
        else:
            dout, grads[key] = back[0], back[1:]
    return grads, dout


# -- the benchmark -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cnn():
    X, y, params = build()
    grads, dX = model_grads(params, X, y)
    P = sum(a.size for p in params.values() for a in p)
    assert 50_000 <= P <= 200_000
    layers = [(f, b, params.get(key, ())) for key, f, b in PAIRS]
    return {"X": X, "y": y, "params": params, "grads": grads, "dX": dX, "P": P,
            "layers": layers, "times": {}}


def _whole(cnn):
    return fastgc.check(model_cost, cnn["grads"], cnn["params"], cnn["X"], cnn["y"],
                        engine="loop", subset=SUBSET)


def _layered(cnn):
    grads = [cnn["grads"].get(key) for key, _, _ in PAIRS]
    return fastgc.check_model(cnn["layers"], cnn["X"], cnn["y"], loss=softmax_loss,
                              grads=grads, dX=cnn["dX"])


def _bare(fn, args, seconds=0.3):
    """CPU seconds per call of ``fn(*args)`` (the mean over about ``seconds``)."""
    fn(*args)
    start, n = time.process_time(), 0
    while True:
        fn(*args)
        n += 1
        elapsed = time.process_time() - start
        if elapsed > seconds:
            return elapsed / n


def floor_seconds(cnn, input_subset=256, contiguous=True):
    """The layer forward passes a full layer-by-layer check runs, each timed bare at the
    layer's recorded input: ``sum_l t_l (2 P_l + 2 min(input_subset, size of x_l))``."""
    total, x = 0.0, cnn["X"]
    for key, forward, _ in PAIRS:
        params = cnn["params"].get(key, ())
        evaluations = 2 * sum(p.size for p in params) + 2 * min(input_subset, x.size)
        total += evaluations * _bare(forward, (x, *params))
        x = forward(x, *params)[0]
        x = np.ascontiguousarray(x) if contiguous else x
    return total


@pytest.mark.benchmark(timer=time.process_time)
@pytest.mark.parametrize("how", ["whole-model-loop", "layer-by-layer"],
                         ids=lambda h: f"how={h}")
def test_cnn(benchmark, cnn, how, capsys):
    run = _whole if how == "whole-model-loop" else _layered
    warm = run(cnn)  # warm-up (imports, caches), and the verdict outside the timing
    assert warm.passed, warm.report()
    benchmark.group = f"cnn: full central check, P={cnn['P']:,}"
    result = benchmark.pedantic(run, args=(cnn,), rounds=ROUNDS, iterations=1,
                                warmup_rounds=0)
    assert result.passed, result.report()
    info = {"params": cnn["P"], "nfev": result.nfev}
    if benchmark.stats is not None:  # --benchmark-disable times nothing
        median = benchmark.stats.stats.median
        if how == "whole-model-loop":
            checked = len(result.checked)
            info.update(checked=checked, extrapolated_s=median * cnn["P"] / checked)
            cnn["times"]["whole"] = info["extrapolated_s"]
        else:
            assert all(r.params is None or r.params.mode == "full" for r in result.layers)
            floor = floor_seconds(cnn)
            info.update(floor_s=floor, ratio_to_floor=median / floor,
                        floor_user_layout_s=floor_seconds(cnn, contiguous=False))
            line = (f"check_model {median:.2f} s CPU, floor {floor:.2f} s (x "
                    f"{median / floor:.2f}; {info['floor_user_layout_s']:.2f} s at the model's "
                    "own layout)")
            if "whole" in cnn["times"]:
                info["speedup"] = cnn["times"]["whole"] / median
                line += (f"; whole-model loop {cnn['times']['whole']:.1f} s extrapolated: "
                         f"{info['speedup']:.0f}x")
            with capsys.disabled():
                print(f"\n  {line}")
            if os.environ.get("FASTGC_BENCH_RECORD") and "whole" in cnn["times"]:
                _record(cnn, median, result.nfev)
        cnn["times"][how] = (median, info)
    benchmark.extra_info.update(info)


def _record(cnn, layered_s, layered_nfev):
    """``FASTGC_BENCH_RECORD=1``: write this run's rows into bench/results.json (the README's
    ``cnn`` block is generated from them, ``python bench/readme_numbers.py``)."""
    import json
    import platform

    path = os.path.join(os.path.dirname(__file__), "results.json")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    whole_s, whole = cnn["times"]["whole-model-loop"]
    data["cnn"] = {
        "params": cnn["P"], "subset": whole["checked"], "subset_s": whole_s,
        "whole_extrapolated_s": whole["extrapolated_s"], "layered_s": layered_s,
        "layered_nfev": layered_nfev, "speedup": whole["extrapolated_s"] / layered_s,
        "rounds": ROUNDS,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"load average {os.getloadavg()[0]:.1f} at the end of the run",
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
