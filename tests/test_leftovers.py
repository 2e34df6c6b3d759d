"""Small trust gaps closed after the last rounds; each test failed before its fix.

1. Floats wider than float64 (NumPy's long double) were rounded to float64 silently when no
   dtype was asked for; now they are refused, as PyTorch refuses them.
2. The command took abbreviated long options (`--layer` for `--layers`), argparse's default;
   now an abbreviation is a mistake like any unknown option.
3. A mistake in `std` (nothing to take it of, a bad axis or ddof) was reported as `var`'s; so
   were mistakes in `trace`, `unsqueeze` and `log_softmax` as `diagonal`'s, `expand_dims`' and
   `logsumexp`'s.
4. `compile` keyed a dict argument by its keys' values only: `{0: x}`, `{0.0: x}` and
   `{False: x}` (equal keys, equal hashes) shared one program, so a function that looks at the
   key's type could replay a program traced for another type.
5. `pictures.py` imported the private `compare._is_tutorial`; it is `compare.is_tutorial` now.
6. The maximum and minimum of a mask, the matrix `diag` makes of a mask and a mask's triangles
   (`tril`, `triu`) were float64; they stay masks, as NumPy and PyTorch keep them booleans.

Found on the way: the first call of `compile(fn, lr=...)` failed ("output array is read-only")
when `fn` made a result of a parameter that backward does not reach (`(x + w) > 0`).
"""

import argparse
import re

import numpy as np
import pytest
from eager_twin import assert_compiled_is_eager
from torch_oracle import needs_torch, torch

from tinygrad_fnn import (
    ShapeError,
    Tensor,
    cli,
    compile,
    concatenate,
    fnn,
    grad,
    log_softmax,
    where,
)

WIDE = np.dtype(np.longdouble)
needs_wide = pytest.mark.skipif(
    WIDE.itemsize <= 8, reason="NumPy's long double is float64 on this platform"
)


def wide(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Long doubles that float64 cannot hold exactly (1 + a third of an ULP of float64)."""
    x = np.random.default_rng(seed).standard_normal(shape).astype(WIDE)
    return x + x * WIDE.type(np.finfo(np.float64).eps / 3)


# each: building a tensor from the data with no dtype given, in one of the ways a user can
UNASKED = {
    "Tensor(array)": lambda a: Tensor(a),
    "Tensor(scalar)": lambda a: Tensor(a.ravel()[0]),
    "Tensor(list)": lambda a: Tensor(list(a.ravel())),
    "Tensor(requires_grad)": lambda a: Tensor(a, requires_grad=True),
    "fnn.as_tensor": lambda a: fnn.as_tensor(a),
    "where, no tensor": lambda a: where(a > 0, a, 0.0),
    "where, the other side": lambda a: where(a > 0, 0.0, a),
    "concatenate, no tensor": lambda a: concatenate([a, a]),
    "beside a mask": lambda a: (Tensor(np.ones(a.shape)) > 0) + a,
}


@needs_wide
@pytest.mark.parametrize("build", UNASKED.values(), ids=UNASKED.keys())
@pytest.mark.parametrize("shape", [(3,), (2, 3), (1,)])
def test_wide_floats_are_refused_when_no_dtype_is_given(build, shape):
    with pytest.raises(TypeError, match=r"wider than float64.*astype\(np\.float64\)"):
        build(wide(len(shape), shape))


@needs_wide
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_wide_floats_are_rounded_when_the_dtype_is_asked_for(seed, dtype):
    a = wide(seed, (4, 3))
    for t in (Tensor(a, dtype=dtype), fnn.as_tensor(a, dtype)):
        assert t.dtype == dtype
        assert np.array_equal(t.data, a.astype(dtype))
        assert not np.array_equal(t.data.astype(WIDE), a)  # the rounding did happen


@needs_wide
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_wide_operands_beside_a_tensor_take_its_dtype(dtype):
    """By design: numbers and arrays beside a float tensor are read in the tensor's dtype."""
    a = wide(0, (2, 3))
    x = Tensor(np.ones((2, 3)), dtype=dtype)
    for t in (x + a, a * x, where(a > 0, x, a), concatenate([x, a])):
        assert t.dtype == dtype
    assert np.array_equal((x + a).data, 1 + a.astype(dtype))


@needs_wide
def test_a_compiled_function_refuses_a_wide_argument_its_eager_twin_refuses():
    """The signature holds an argument's dtype, so a long double traces again, and is refused."""
    w = Tensor(np.ones(3), requires_grad=True)
    mask = Tensor(np.ones(3)) > 0
    made = lambda X: (Tensor(X) * w).sum()  # noqa: E731
    beside_mask = lambda X: ((mask + X) * w).sum()  # noqa: E731
    for fn, want in ((made, 0 + 1 + 2), (beside_mask, 1 + 2 + 3)):
        step = compile(fn)
        assert float(step(np.arange(3.0)).data) == want
        assert float(step(np.arange(3.0)).data) == want  # the replay
        with pytest.raises(TypeError, match="wider than float64"):
            step(wide(0, (3,)))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.int64, np.bool_])
def test_narrower_data_is_still_taken(dtype):
    a = np.arange(6).reshape(2, 3).astype(dtype)
    t = Tensor(a)
    assert t.dtype == np.float64
    assert np.array_equal(t.data, a.astype(np.float64))


@needs_torch
@needs_wide
def test_pytorch_refuses_long_double_too():
    with pytest.raises(TypeError):
        torch.tensor(wide(0, (3,)))


# ----- 2. the command's long options are taken whole


def _parsers() -> list[tuple[list[str], argparse.ArgumentParser]]:
    """The command's parser and each subcommand's, with the arguments that come before an
    option (the subcommand and its positionals)."""
    parser = cli.build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = [([], parser)]
    for name, sub in subcommands.choices.items():
        positionals = ["p.npz" for a in sub._actions if not a.option_strings]
        found.append(([name, *positionals], sub))
    return found


def _abbreviations() -> list[tuple[list[str], str]]:
    """Every proper prefix (two dashes and at least one letter) of every long option that is
    not itself an option, with the arguments it follows."""
    cases = []
    for before, parser in _parsers():
        options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
        for option in sorted(options):
            for end in range(3, len(option)):
                if option[:end] not in options:
                    cases.append((before, option[:end]))
    return cases


ABBREVIATIONS = _abbreviations()


def test_every_subcommand_and_long_option_is_walked():
    walked = {tuple(before[:1]) for before, _ in ABBREVIATIONS}
    assert walked == {(), *[(c,) for c in cli.COMMANDS]}
    assert ([], "--debu") in ABBREVIATIONS and (["train"], "--layer") in ABBREVIATIONS


@pytest.mark.parametrize(
    "before, prefix", ABBREVIATIONS, ids=[" ".join(c[0][:1] + [c[1]]) for c in ABBREVIATIONS]
)
def test_an_abbreviated_option_is_refused(before, prefix):
    args = [prefix, "train"] if not before else [*before, prefix, "1"]
    with pytest.raises(cli.CliError, match=f"unrecognized arguments: {prefix}( |$)"):
        cli.build_parser().parse_args(args)


# ----- 3. std's mistakes name std, not the var it is computed from

# each: arguments to var or std that are a mistake, the error, and what its message goes on to say
MISTAKEN = [
    ((0,), {}, ShapeError, "has no elements to take the {what} of"),
    ((0, 3), {"axis": 0}, ShapeError, "has no elements to take the {what} of"),
    ((2, 0), {"axis": (0, 1)}, ShapeError, "has no elements to take the {what} of"),
    ((2, 3), {"axis": 2}, ShapeError, "axis 2 is out of range"),
    ((2, 3), {"axis": (1, -1)}, ShapeError, "repeats an axis"),
    ((2, 3), {"ddof": 6}, ValueError, "ddof must be a whole number from 0 to 5"),
    ((2, 3), {"axis": 1, "ddof": -1}, ValueError, "ddof must be a whole number from 0 to 2"),
    ((4,), {"ddof": 1.5}, ValueError, "ddof must be a whole number from 0 to 3"),
]
WHAT = {"var": "variance", "std": "standard deviation"}


@pytest.mark.parametrize("op", ["var", "std", "np.var", "np.std"])
@pytest.mark.parametrize("shape, kwargs, error, says", MISTAKEN)
def test_a_mistake_in_var_or_std_names_the_one_called(op, shape, kwargs, error, says):
    method = op.removeprefix("np.")
    x = Tensor(np.zeros(shape), requires_grad=True)
    call = getattr(np, method) if op.startswith("np.") else getattr(x, method)
    args = (x,) if op.startswith("np.") else ()
    with pytest.raises(error) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert message.startswith(f"{method}: ")
    assert says.format(what=WHAT[method]) in message


# the same for the other methods computed through another: each names itself
# each: a mistaken call, and the start of its message
THROUGH_ANOTHER = {
    "trace of a vector": (lambda: Tensor(np.zeros(3)).trace(), "trace: needs a matrix"),
    "trace of a 3-D tensor": (lambda: Tensor(np.zeros((2, 2, 2))).trace(), "trace: needs a"),
    "trace, offset 1.5": (lambda: Tensor(np.zeros((2, 2))).trace(1.5), "trace: expects whole"),
    "unsqueeze, axis 7": (lambda: Tensor(np.zeros((2, 3))).unsqueeze(7), "unsqueeze: axis 7"),
    "unsqueeze, axis -4": (lambda: Tensor(np.zeros((2, 3))).unsqueeze(-4), "unsqueeze: axis -4"),
    "unsqueeze, axis 0.5": (lambda: Tensor(np.zeros(2)).unsqueeze(0.5), "unsqueeze: axis: expects"),
    "log_softmax, axis 4": (lambda: Tensor(np.zeros((2, 3))).log_softmax(4), "log_softmax: axis 4"),
    "log_softmax, axis (0, 0)": (
        lambda: Tensor(np.zeros((2, 3))).log_softmax((0, 0)),
        "log_softmax: axis (0, 0) repeats",
    ),
    "tg.log_softmax, axis 2": (
        lambda: log_softmax(Tensor(np.zeros(3)), 2),
        "log_softmax: axis 2",
    ),
}


@pytest.mark.parametrize("call, start", THROUGH_ANOTHER.values(), ids=THROUGH_ANOTHER.keys())
def test_a_method_computed_through_another_names_itself(call, start):
    with pytest.raises((ShapeError, TypeError, ValueError)) as caught:
        call()
    assert str(caught.value).startswith(start), str(caught.value)


# ----- 4. compile tells equal keys of different types apart

# each: values Python finds equal, with equal hashes, which a function can tell apart
EQUAL_KEYS = [
    [0, 0.0, False, -0.0, np.float64(0.0), np.int64(0)],
    [1, 1.0, True],
    [(0,), (False,), (0.0,), (-0.0,)],
    [frozenset({0}), frozenset({False}), frozenset({0.0})],
    [(1, (0,)), (1, (False,)), (True, (0,))],
]


def _weight(k: object) -> float:
    """A number that differs for each value in a group of `EQUAL_KEYS` (its repr's length)."""
    return float(len(repr(k)))


def _weighed(d: dict, w: Tensor) -> Tensor:
    """Σ weight(key) · Σ(value · w): a cost whose value depends on the keys' types."""
    return sum(_weight(k) * (v * w).sum() for k, v in d.items())


W = Tensor(np.linspace(0.5, 2.0, 3), requires_grad=True)  # the parameter, a global they name

# each: a function whose cost depends on a key's type, and the arguments of a call with key k
SHAPES_OF_CALL = {
    "dict": (lambda d: _weighed(d, W), lambda k, x: ((({k: x}),), {})),
    "keyword": (lambda *, d: _weighed(d, W), lambda k, x: ((), {"d": {k: x}})),
    "nested": (lambda a: _weighed(a[0]["in"], W), lambda k, x: (([{"in": {k: x}}],), {})),
    "two keys": (lambda d: _weighed(d, W), lambda k, x: (({"a": x, k: 2 * x},), {})),
    "frozenset": (lambda s, x: _weight(s) * (x * W).sum(), lambda k, x: ((frozenset({k}), x), {})),
}


@pytest.mark.parametrize("group", EQUAL_KEYS, ids=[repr(g[0]) for g in EQUAL_KEYS])
@pytest.mark.parametrize("fn, call", SHAPES_OF_CALL.values(), ids=SHAPES_OF_CALL.keys())
def test_a_compiled_function_tells_equal_keys_of_other_types_apart(group, fn, call):
    step = compile(fn)
    rng = np.random.default_rng(len(group))
    # each key twice in a row (the fast path), then back through the others (the general path)
    for k in [*group, *group[::-1], *group]:
        x = Tensor(rng.standard_normal(3))
        args, kwargs = call(k, x)
        W.grad = None
        want = fn(*args, **kwargs)
        want.backward()
        want_grad = W.grad.data.copy()
        W.grad = None
        got = step(*args, **kwargs)
        assert np.array_equal(got.data, want.data), (k, float(got.data), float(want.data))
        assert np.array_equal(W.grad.data, want_grad), k
    assert step.traces == len({repr(k) for k in group})


# ----- 5. one public test of "the tutorial's network", shared by compare and pictures


@pytest.mark.parametrize(
    "layers, activation, tutorial",
    [
        ((30, 16, 1), "relu", True),
        ([2, 1, 1], "relu", True),
        ((30, 16, 1), "tanh", False),
        ((30, 16, 8, 1), "relu", False),
        ((64, 32, 10), "relu", False),
        ((30, 1), "relu", False),
    ],
)
def test_the_tutorial_network_is_one_hidden_relu_layer_and_one_output(layers, activation, tutorial):
    from tinygrad_fnn import compare, pictures

    assert compare.is_tutorial(layers, activation) is tutorial
    assert pictures.is_tutorial is compare.is_tutorial  # one test, not a copy


def test_pictures_imports_no_private_name_of_compare():
    import ast
    import inspect

    from tinygrad_fnn import pictures

    tree = ast.parse(inspect.getsource(pictures))
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "tinygrad_fnn.compare"
        for alias in node.names
    ]
    assert imported and not [name for name in imported if name.startswith("_")]


# ----- 6. a mask's maximum, minimum, diag and triangles are masks

# each: the engine on a mask, NumPy on its booleans, PyTorch on them (None: NumPy is the oracle)
KEEPING = {
    "max()": (lambda m: m.max(), np.max, lambda t: t.amax()),
    "max(0)": (lambda m: m.max(0), lambda v: v.max(0), lambda t: t.amax(0)),
    "max(-1, keepdims)": (
        lambda m: m.max(-1, keepdims=True),
        lambda v: v.max(-1, keepdims=True),
        lambda t: t.amax(-1, keepdim=True),
    ),
    "min()": (lambda m: m.min(), np.min, lambda t: t.amin()),
    "min(-1)": (lambda m: m.min(-1), lambda v: v.min(-1), lambda t: t.amin(-1)),
    "np.amax": (lambda m: np.amax(m, axis=0), lambda v: np.amax(v, axis=0), None),
    "np.min": (lambda m: np.min(m), np.min, None),
    "tril()": (lambda m: m.tril(), np.tril, lambda t: t.tril()),
    "tril(1)": (lambda m: m.tril(1), lambda v: np.tril(v, 1), lambda t: t.tril(1)),
    "triu()": (lambda m: m.triu(), np.triu, lambda t: t.triu()),
    "triu(-1)": (lambda m: m.triu(-1), lambda v: np.triu(v, -1), lambda t: t.triu(-1)),
    "np.tril": (lambda m: np.tril(m, -1), lambda v: np.tril(v, -1), None),
    "np.triu": (lambda m: np.triu(m, 2), lambda v: np.triu(v, 2), None),
    "diag()": (lambda m: m[..., 0, :].diag(), lambda v: np.diag(v[..., 0, :]), None),
    "diag(2)": (lambda m: m[..., 0, :].diag(2), lambda v: np.diag(v[..., 0, :], 2), None),
    "diag(-1)": (lambda m: m[..., 0, :].diag(-1), lambda v: np.diag(v[..., 0, :], -1), None),
    "np.diag": (lambda m: np.diag(m[..., 0, :]), lambda v: np.diag(v[..., 0, :]), None),
}
MATRICES = [(4, 5), (1, 1), (3, 1), (2, 6), (5, 5)]


def _mask(seed: int, shape: tuple[int, ...]) -> tuple[Tensor, np.ndarray]:
    """A mask made by a comparison (with an exact tie, False), and its booleans."""
    x = np.random.default_rng(seed).standard_normal(shape)
    x[0, 0] = 0.0
    return Tensor(x) > 0, x > 0


@pytest.mark.parametrize("case", KEEPING, ids=list(KEEPING))
def test_a_masks_maximum_minimum_diag_and_triangles_are_masks(case):
    ours, numpy, _ = KEEPING[case]
    for seed, shape in enumerate(MATRICES):
        m, v = _mask(seed, shape)
        got, want = ours(m), numpy(v)
        assert got.dtype == np.bool_ and want.dtype == np.bool_, case
        assert got.shape == want.shape and np.array_equal(got.data, want), case


@needs_torch
@pytest.mark.parametrize("case", [c for c in KEEPING if KEEPING[c][2] is not None])
def test_a_masks_maximum_minimum_and_triangles_agree_with_pytorch(case):
    ours, _, theirs = KEEPING[case]
    for seed, shape in enumerate(MATRICES):
        m, v = _mask(seed, shape)
        got, want = ours(m), theirs(torch.from_numpy(v))
        assert got.dtype == np.bool_ and want.dtype == torch.bool, case
        assert np.array_equal(got.data, want.numpy()), case


@needs_torch
@pytest.mark.parametrize("k", [0, 1, -2])
def test_diag_of_a_mask_agrees_with_pytorch(k):
    for seed, shape in enumerate(MATRICES):
        m, v = _mask(seed, shape)
        got, want = m[0].diag(k), torch.from_numpy(v[0]).diag(k)
        assert got.dtype == np.bool_ and want.dtype == torch.bool
        assert np.array_equal(got.data, want.numpy())


def test_a_masks_kept_masks_in_a_compiled_step_give_the_eager_bits():
    rng = np.random.default_rng(11)
    x = Tensor(rng.standard_normal((4, 4)))

    def cost(w: Tensor) -> Tensor:
        m = (x + w) > 0
        kept = m.tril() | m.triu(2) | (m[0].diag() & m.max(0, keepdims=True))
        return (where(kept, w * w, -w) + m.min(1, keepdims=True) * w).sum()

    assert_compiled_is_eager(cost, Tensor(rng.standard_normal((4, 4)), requires_grad=True), 0.1)


def test_a_float_tensors_maximum_and_triangles_stay_float():
    for dtype in (np.float32, np.float64):
        x = Tensor(np.arange(12.0).reshape(3, 4) - 5, dtype=dtype)
        for t in (x.max(), x.min(0), x.tril(), x.triu(1), x[0].diag(1)):
            assert t.dtype == dtype


# ----- found on the way: `compile(fn, lr=...)` updated while its trace still held every result


def _unused(x: Tensor, w: Tensor) -> Tensor:
    x + w  # a result no cost reaches (eager drops it at once)
    return (w * w).sum()


# each: a cost with a result of a parameter that backward does not reach
UNREACHED = {
    "compared": lambda x, w: (((x + w) > 0) * w).sum(),
    "in where": lambda x, w: where((x * w) > 0, w * w, -w).sum(),
    "unused": _unused,
    "cast of a comparison": lambda x, w: ((w - x > 0).astype(np.float64) * w).sum(),
}


@pytest.mark.parametrize("cost", UNREACHED.values(), ids=UNREACHED.keys())
@pytest.mark.parametrize("seed", range(3))
def test_the_first_compiled_update_is_not_blocked_by_a_result_backward_did_not_reach(cost, seed):
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal((3, 5)))
    w = Tensor(rng.standard_normal((3, 5)), requires_grad=True)
    assert_compiled_is_eager(lambda w: cost(x, w), w, 0.1)


# ----- found on the way: the keys of a captured dict, and the names of a captured object's
# attributes, were not part of the signature (only the values one level in were)


class _Options:
    """A captured object whose attributes a function reads by name."""

    def __init__(self, **named: float) -> None:
        vars(self).update(named)


OPTIONS = {"scale": 2.0}
OBJECT = _Options(scale=2.0)
EQUAL = {0: 2.0}
V = Tensor(np.linspace(-1.0, 2.0, 4), requires_grad=True)

# each: the function (its cost reads the keys or names), and edits that keep every value
CAPTURED = {
    "dict key renamed": (
        lambda: (V * OPTIONS.get("scale", 1.0)).sum(),
        [lambda: OPTIONS.clear() or OPTIONS.update(other=2.0), lambda: OPTIONS.update(scale=2.0)],
    ),
    "dict key of another type": (
        lambda: (V * (5.0 if any(isinstance(k, bool) for k in EQUAL) else 1.0)).sum(),
        [lambda: EQUAL.clear() or EQUAL.update({False: 2.0}), lambda: EQUAL.update({0: 2.0})],
    ),
    "dict keys reordered": (
        lambda: (V * (3.0 if next(iter(OPTIONS)) == "scale" else 1.0)).sum(),
        [lambda: OPTIONS.update(a=2.0), lambda: OPTIONS.update(scale=OPTIONS.pop("scale"))],
    ),
    "attribute renamed": (
        lambda: (V * getattr(OBJECT, "scale", 1.0)).sum(),
        [lambda: vars(OBJECT).clear() or vars(OBJECT).update(other=2.0)],
    ),
}


@pytest.mark.parametrize("fn, edits", CAPTURED.values(), ids=CAPTURED.keys())
def test_a_captured_dicts_keys_are_part_of_the_signature(fn, edits):
    saved = dict(OPTIONS), dict(EQUAL), dict(vars(OBJECT))
    try:
        step = compile(fn)
        for edit in [None, None, *edits, *edits]:  # twice before any edit: the fast path
            if edit is not None:
                edit()
            for _ in range(2):
                V.grad = None
                want = fn()
                want.backward()
                want_grad = V.grad.data.copy()
                V.grad = None
                got = step()
                assert np.array_equal(got.data, want.data), (float(got.data), float(want.data))
                assert np.array_equal(V.grad.data, want_grad)
    finally:
        for d, s in zip((OPTIONS, EQUAL, vars(OBJECT)), saved):
            d.clear()
            d.update(s)


# ----- `grad()` and tensors that retain their gradient: PyTorch fills their `.grad` (it used to
# stay None here)


def _retaining(seed: int, shape: tuple[int, ...]):
    """x; h = 3x and k = exp(h), both retaining; z = 5x retaining, on a branch of its own; and
    y = Σk² + Σz + Σx², whose gradients are known in closed form."""
    x = Tensor(np.random.default_rng(seed).uniform(-1.0, 1.0, shape), requires_grad=True)
    h = (x * 3.0).retain_grad()
    k = h.exp().retain_grad()
    z = (x * 5.0).retain_grad()
    y = (k * k).sum() + z.sum() + (x * x).sum()
    return x, h, k, z, y


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("seed, shape", [(0, (3,)), (1, (2, 4)), (2, ()), (3, (5, 1))])
def test_grad_fills_the_gradient_of_a_tensor_that_retains_it(seed, shape, create_graph):
    x, h, k, z, y = _retaining(seed, shape)
    (dx,) = grad(y, x, create_graph=create_graph)
    assert x.grad is None  # a leaf's .grad is never touched by grad()
    np.testing.assert_allclose(k.grad.data, 2 * k.data, rtol=1e-15)
    np.testing.assert_allclose(h.grad.data, 2 * k.data * k.data, rtol=1e-15)
    assert np.array_equal(z.grad.data, np.ones(shape))
    np.testing.assert_allclose(dx.data, 6 * k.data * k.data + 5 + 2 * x.data, rtol=1e-14)
    assert h.grad.requires_grad == create_graph  # in the recorded pass, as dx is


def test_grad_for_a_retaining_tensor_fills_both_its_result_and_its_grad():
    x, h, k, z, y = _retaining(4, (3,))
    (dh,) = grad(y, h)
    assert np.array_equal(h.grad.data, dh.data) and not np.shares_memory(h.grad.data, dh.data)
    assert z.grad is None  # z is not on the way to h: nothing flows through it
    assert x.grad is None


@needs_torch
@pytest.mark.parametrize("seed, shape", [(5, (3,)), (6, (2, 3))])
def test_retained_gradients_under_grad_agree_with_pytorch(seed, shape):
    x, h, k, z, y = _retaining(seed, shape)
    tx = torch.tensor(x.data, requires_grad=True)
    th = tx * 3.0
    th.retain_grad()
    tk = th.exp()
    tk.retain_grad()
    tz = tx * 5.0
    tz.retain_grad()
    ty = (tk * tk).sum() + tz.sum() + (tx * tx).sum()
    for wanted, twanted in ((x, tx), (h, th)):
        for t in (h, k, z):
            t.grad = None
        for t in (th, tk, tz):
            t.grad = None
        grad(y, wanted, retain_graph=True)
        torch.autograd.grad(ty, twanted, retain_graph=True)
        for ours, theirs in ((h, th), (k, tk), (z, tz)):
            if theirs.grad is None:
                assert ours.grad is None
            else:
                np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=1e-14)


# ----- found by the fresh-eyes run


@pytest.mark.parametrize("epochs", [-5, -1, True, 2.5, "3", None])
def test_train_refuses_epochs_that_are_not_a_count(epochs):
    X = np.random.default_rng(0).standard_normal((2, 8))
    Y = (X[:1] > 0).astype(np.float64)
    params = fnn.initialize_parameters(2, 3, seed=0)
    before = {k: p.data.copy() for k, p in params.items()}
    with pytest.raises(ValueError, match="epochs must be 0 or a positive whole number"):
        fnn.train(X, Y, params, epochs=epochs, print_every=0)
    assert all(np.array_equal(p.data, before[k]) for k, p in params.items())


@pytest.mark.parametrize("epochs", [0, 1, np.int64(3)])
def test_train_takes_a_count_of_epochs(epochs):
    X = np.random.default_rng(1).standard_normal((2, 8))
    Y = (X[:1] > 0).astype(np.float64)
    costs = fnn.train(X, Y, fnn.initialize_parameters(2, 3, seed=0), epochs=epochs, print_every=0)
    assert len(costs) == int(epochs)


@pytest.mark.parametrize(
    "func, args, name",
    [
        (np.linalg.norm, (), "np.linalg.norm"),
        (np.linalg.inv, (), "np.linalg.inv"),
        (np.fft.fft, (), "np.fft.fft"),
        (np.median, (), "np.median"),
        (np.lib.stride_tricks.sliding_window_view, (2,), "np.lib.stride_tricks"),
    ],
)
def test_a_numpy_function_the_engine_lacks_is_named_with_its_module(func, args, name):
    t = Tensor(np.arange(4.0).reshape(2, 2) + 1.0, requires_grad=True)
    with pytest.raises(TypeError, match=rf"^{re.escape(name)}\.?\w* is not one of the NumPy"):
        func(t, *args)


@pytest.mark.parametrize("script", ["bench_step.py", "bench_ops.py", "bench_graph.py"])
def test_every_benchmark_answers_help_without_running(script):
    import subprocess
    import sys
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / script
    done = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("usage: ")
    assert "|" not in done.stdout  # no table: nothing was measured
    wrong = subprocess.run([sys.executable, str(path), "--bogus"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "unrecognized arguments: --bogus" in wrong.stderr


@pytest.mark.parametrize("bad", [np.array([10.0, 10.0]), [1.0, 2.0], 3.0])
def test_a_grad_that_is_not_a_tensor_is_named_wherever_it_is_read(bad):
    """PyTorch refuses `x.grad = array` at the assignment; here the slot is plain, so each reader
    (backward, fnn.SGD, a compiled step's update) says what is wrong instead of a raw error."""
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True, name="x")
    x.grad = bad
    with pytest.raises(TypeError, match=r"backward: \.grad of x \(2,\) is a \w+, not a Tensor"):
        (x * x).sum().backward()
    with pytest.raises(TypeError, match=r"sgd: \.grad of x \(2,\) is a \w+, not a Tensor"):
        fnn.SGD([x], 0.1).step()
    assert np.array_equal(x.data, [1.0, 2.0])  # nothing was updated
    step = compile(lambda: (x * x).sum())
    with pytest.raises(TypeError, match=r"compile: \.grad of x \(2,\) is a \w+, not a Tensor"):
        step()
    x.grad = None
    step()
    x.grad = bad
    with pytest.raises(TypeError, match=r"sgd: \.grad of x \(2,\) is a \w+, not a Tensor"):
        step.sgd(0.1)
