"""Small seeded results of every type, some failing, for the display and plot tests.

Block names are user strings: one is ``"<script>"`` so that the tests can check it is escaped.
"""

from html.parser import HTMLParser

import numpy as np

import fastgc

SCRIPT = "<script>alert('x')</script>"


def quadratic():
    """``cost(p) = 0.5 x.A x + sum(b^3)`` over a 3x4 ``W`` and a 5-vector ``b`` (and a block
    named ``SCRIPT``), with its exact gradient."""
    rng = np.random.default_rng(20)
    A = rng.standard_normal((12, 12))
    A = A @ A.T / 12
    params = {"W": rng.standard_normal((3, 4)), SCRIPT: rng.standard_normal(5),
              "c": rng.standard_normal(2)}

    def cost(p):
        x = p["W"].ravel()
        return 0.5 * x @ A @ x + np.sum(p[SCRIPT] ** 3) + np.sum(np.sin(p["c"]))

    def grad(p):
        return {"W": (A @ p["W"].ravel()).reshape(3, 4), SCRIPT: 3 * p[SCRIPT] ** 2,
                "c": np.cos(p["c"])}

    return cost, grad, params


def failing_check(**options):
    """A check whose ``W`` is right but whose ``SCRIPT`` block is doubled and ``c`` has one
    wrong entry."""
    cost, grad, params = quadratic()
    g = grad(params)
    g[SCRIPT] = 2 * g[SCRIPT]
    g["c"][1] += 0.3
    return fastgc.check(cost, g, params, **options), (cost, grad, params)


def passing_check():
    cost, grad, params = quadratic()
    return fastgc.check(cost, grad(params), params)


def failing_model(**options):
    """affine -> relu -> affine with the second affine's db doubled."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4, 3))
    w1, b1 = rng.standard_normal((3, 5)), rng.standard_normal(5)
    w2, b2 = rng.standard_normal((5, 2)), rng.standard_normal(2)

    def affine_forward(x, w, b):
        return x @ w + b, (x, w)

    def affine_backward(dout, cache):
        x, w = cache
        return dout @ w.T, x.T @ dout, dout.sum(axis=0)

    def affine_backward_bad(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        return dx, dw, 2 * db

    def relu_forward(x):
        return np.maximum(x, 0), x

    def relu_backward(dout, x):
        return dout * (x > 0)

    layers = {"fc1": (affine_forward, affine_backward, (w1, b1)),
              "relu": (relu_forward, relu_backward),
              SCRIPT: (affine_forward, affine_backward_bad, (w2, b2))}
    return fastgc.check_model(layers, X, **options)


def failing_hessian():
    """``check_hessian`` of a quadratic whose Hessian's off-diagonal block is halved."""
    rng = np.random.default_rng(5)
    A = rng.standard_normal((5, 5))
    A = A @ A.T + np.eye(5)
    params = {"u": rng.standard_normal(3), "v": rng.standard_normal(2)}

    def grad(p):
        g = A @ np.concatenate([p["u"], p["v"]])
        return {"u": g[:3], "v": g[3:]}

    H = A.copy()
    H[:3, 3:] *= 0.5
    H[3:, :3] *= 0.5
    return fastgc.check_hessian(grad, lambda p: H, params)


def taylor(wrong=False):
    rng = np.random.default_rng(7)
    x0 = rng.standard_normal(4)

    def cost(x):
        return float(np.sum(np.exp(0.3 * x)) + 0.5 * x @ x)

    def grad(x):
        g = 0.3 * np.exp(0.3 * x) + x
        return 1.1 * g if wrong else g

    return fastgc.taylor_test(cost, grad, x0)


def scipy_check():
    rng = np.random.default_rng(8)
    x0 = rng.standard_normal(3)

    def fun(x):
        return float(np.sum(x ** 4) + x[0] * x[1])

    def jac(x):
        g = 4 * x ** 3
        g[0] += x[1]
        g[1] += x[0]
        g[2] *= 1.5  # wrong
        return g

    return fastgc.check_scipy(fun, x0, jac=jac)


VOID = {"br", "hr", "img", "meta", "input", "link", "col", "wbr"}


class Page(HTMLParser):
    """Parse a fragment, checking that tags nest, and collect what a reader would see."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.stack, self.tags, self.attrs = [], [], []
        self.text = {}  # tag path -> text, for looking things up
        self.rows = []  # table rows: list of cell texts
        self.details = []  # (open, summary text, body text)
        self._row = self._cell = None
        self._details = []
        self.fallback = ""
        self.shown = ""  # all text outside the <pre> fallback and the stylesheet
        self.feed(html)
        self.close()
        assert not self.stack, f"unclosed tags: {self.stack}"

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "details":
            self._details.append([("open", None) in attrs, "", ""])
            self.details.append(self._details[-1])  # in document order

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if tag in ("td", "th"):
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr":
            self.rows.append(self._row)
        elif tag == "details":
            self._details.pop()

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._details:
            part = 1 if "summary" in self.stack else 2
            for d in self._details:  # an inner section's text is its outer one's too
                d[part if d is self._details[-1] else 2] += data
        if "pre" in self.stack:
            self.fallback += data
        elif "style" not in self.stack:
            self.shown += data
