"""fastgc: check hand-written gradients against finite differences of the cost, fast.

Public API
----------
check                   estimate the gradient numerically and compare it with yours (any
                        nesting of dicts, lists and tuples; ``exclude=`` non-trainable entries)
check_vjp               check a backward pass (vector-Jacobian product) of a vector function
check_jvp               check a forward-mode Jacobian-vector product
check_layer             check a forward/backward pair (``affine_forward``, ``affine_backward``)
check_module            check a stateful layer object (``parameters``, ``forward``, ``backward``)
check_model             check a whole model layer by layer, and that its gradients chain the layers'
check_hvp               check a Hessian-vector product against differences of the gradient
check_hessian           check a Hessian matrix (dense, sparse, LinearOperator) block by block
taylor_test             the adjoint codes' Taylor test: remainder rates on a noise-aware step ladder
check_scipy             check fun/jac/hess/hessp written for scipy.optimize.minimize
CostError               raised when a cost returns something that is not a finite real scalar
FastgcWarning           the base class of every warning fastgc gives (``-W error::...``)
Float32Warning          warned when float32 parameters are upcast to float64
WorkerError             raised when ``check(..., workers=...)`` loses a chunk of work twice
assert_gradients_close  the same, raising ``AssertionError`` with the report (for tests)
CheckResult             what ``check`` returns
BlockResult             one parameter block of a ``CheckResult`` (``result.blocks["W1"]``)
Entry                   one checked coordinate, as ``CheckResult.worst`` lists them
FrameworkResult         what ``fastgc.torch.check`` and ``fastgc.jax.check_vjp`` return
ModelResult             what ``check_model`` returns
LayerResult             one layer of a ``ModelResult``
HessianResult           what ``check_hvp`` and ``check_hessian`` return
PairResult              one block ``H[A, B]`` of a ``HessianResult``
PropertyResult          a ``HessianResult``'s symmetry or linearity check
TaylorResult            what ``taylor_test`` returns
ScipyCheckResult        what ``check_scipy`` returns
MLP                     fastgc's dense network (the exercise's, any depth); a cost for ``check``
batched                 mark a cost as accepting a leading batch axis (the stacked engine)
gradient_check          the exercise's 1-D check
gradient_check_n        the exercise's N-D check, with fast engines on request
gc_utils                drop-in for the exercise's helper module
torch                   ``fastgc.torch``: check, check_module, gradcheck for PyTorch autograd
jax                     ``fastgc.jax``: check_vjp, check_jvp, check_grads for jax rules

Everything not listed in ``__all__`` is private and may change. Importing fastgc does not
compile any numba kernel, nor import torch or jax (``fastgc.torch`` imports torch when used).

fastgc prints nothing (the command line and the progress bar on stderr aside): it logs to the
``logging`` logger ``"fastgc"`` (debug records of each check's plan, step and chunks), which has
only a ``NullHandler`` until the application configures logging.
"""

import logging as _logging

from fastgc._version import __version__

# The library convention (logging's HOWTO): a NullHandler, so that fastgc's records go nowhere
# unless the application configures logging, and never to logging's last-resort stderr handler.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = [
    "BlockResult",
    "CheckResult",
    "CostError",
    "Entry",
    "FastgcWarning",
    "Float32Warning",
    "FrameworkResult",
    "HessianResult",
    "LayerResult",
    "MLP",
    "ModelResult",
    "PairResult",
    "PropertyResult",
    "ScipyCheckResult",
    "TaylorResult",
    "WorkerError",
    "__version__",
    "assert_gradients_close",
    "batched",
    "check",
    "check_hessian",
    "check_hvp",
    "check_jvp",
    "check_layer",
    "check_model",
    "check_module",
    "check_scipy",
    "check_vjp",
    "gc_utils",
    "gradient_check",
    "gradient_check_n",
    "jax",
    "taylor_test",
    "torch",
]

# Resolved lazily (PEP 562) so that ``import fastgc`` and ``fastgc --help`` stay light: numba
# and scipy are imported only when a checking function is first used.
_LAZY = {
    "check": "fastgc._check",
    "check_vjp": "fastgc._layers",
    "check_jvp": "fastgc._layers",
    "check_layer": "fastgc._layers",
    "check_module": "fastgc._layers",
    "check_model": "fastgc._model",
    "check_hvp": "fastgc._second_order",
    "check_hessian": "fastgc._second_order",
    "taylor_test": "fastgc._taylor",
    "check_scipy": "fastgc._scipy_check",
    "HessianResult": "fastgc._core.second_order_result",
    "PairResult": "fastgc._core.second_order_result",
    "PropertyResult": "fastgc._core.second_order_result",
    "TaylorResult": "fastgc._taylor",
    "ScipyCheckResult": "fastgc._scipy_check",
    "CostError": "fastgc._errors",
    "FastgcWarning": "fastgc._errors",
    "Float32Warning": "fastgc._errors",
    "assert_gradients_close": "fastgc._check",
    "CheckResult": "fastgc._core.result",
    "BlockResult": "fastgc._core.result",
    "Entry": "fastgc._core.result",
    "FrameworkResult": "fastgc._framework",
    "ModelResult": "fastgc._model",
    "LayerResult": "fastgc._model",
    "MLP": "fastgc._network.mlp",
    "WorkerError": "fastgc._errors",
    "batched": "fastgc._engines.registry",
    "gradient_check": "fastgc._exercise.checks",
    "gradient_check_n": "fastgc._exercise.checks",
}


def __getattr__(name):
    import importlib

    if name in ("gc_utils", "torch", "jax"):
        # import_module, not "from . import gc_utils": that asks this __getattr__ for the
        # name again before importing the submodule, and recurses.
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        return getattr(module, name)
    raise AttributeError(f"module 'fastgc' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
