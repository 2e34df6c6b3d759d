"""A hostile sweep of `compile` (issue 9): each test changes something between calls that the
signature or the fast path's guard must notice, and compares every compiled call with the eager
`fn()` + `backward()` (and the update, with `lr=`) on twin tensors, bit for bit, errors
included. The oracle is the eager engine itself."""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tinygrad_fnn import TraceError, compile, fnn
from tinygrad_fnn.engine import Tensor, no_grad

Build = Callable[[], tuple[Callable[[], Tensor], list[Tensor], Callable[[int], None]]]


def outcome(call: Callable[[], list[np.ndarray]]) -> tuple:
    """What a call gave: its arrays, or the type and message of its error."""
    try:
        return ("ok", call())
    except Exception as error:  # the eager error is the expected outcome
        return ("error", type(error), str(error))


def agree(eager: tuple, compiled: tuple) -> bool:
    if eager[0] != compiled[0]:
        return False
    if eager[0] == "error":
        return eager[1] is compiled[1]
    pairs = list(zip(eager[1], compiled[1], strict=True))
    return all(a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True) for a, b in pairs)


def compare(build: Build, calls: int = 5, lr: float | None = None) -> Callable:
    """Build twin worlds (function, parameters, mutation before call i); call one eagerly and
    the other compiled `calls` times; every outcome must agree. Returns the compiled function."""
    fe, pe, mutate_e = build()
    fc, pc, mutate_c = build()
    step = compile(fc, lr=lr)

    def state(cost: Tensor, params: list[Tensor]) -> list[np.ndarray]:
        grads = [p.grad.data if p.grad is not None else np.array(np.nan) for p in params]
        return [cost.data, *grads, *(p.data for p in params)]

    def eager() -> list[np.ndarray]:
        cost = fe()
        cost.backward()
        if lr is not None:
            with no_grad():
                for p in pe:  # the parameters: what requires grad (a stale `.grad` of a
                    if p.requires_grad and p.grad is not None:  # constant is not one)
                        data = p.data  # in place, as fnn.SGD
                        data -= lr * p.grad.data
        return state(cost, pe)

    for i in range(calls):
        mutate_e(i)
        mutate_c(i)
        want, got = outcome(eager), outcome(lambda: state(step(), pc))
        assert agree(want, got), (i, want, got)
    return step


# ----- defects found (each test failed before its fix)


@pytest.mark.parametrize("lr", [None, 0.25])
def test_requires_grad_turned_off_on_a_captured_parameter_retraces(lr):
    """The key of a captured tensor held `requires_grad and grad is None`: False both for a
    tensor that stopped requiring grad and for a parameter holding a gradient, so the program
    of the second kept giving (and applying) a gradient eager no longer computes."""
    rng = np.random.default_rng(1)
    a0, b0 = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))

    def build():
        a, b = Tensor(a0, requires_grad=True), Tensor(b0, requires_grad=True)

        def mutate(i: int) -> None:
            b.requires_grad = i not in (2, 3)
            if i == 4:
                b.grad = None

        return lambda: (a * b * b).sum(), [a, b], mutate

    step = compare(build, calls=6, lr=lr)
    assert step.traces == 4  # no grad, grad held, b constant, b a parameter without grad


@pytest.mark.parametrize("held", [(1, 3), (2, 1), (2, 3, 1)])
def test_a_grad_of_another_shape_is_the_eager_error_not_a_broadcast(held):
    """`p.grad` set by hand to a gradient `p`'s cannot be added to: eager raises; the program
    traced with a gradient of the right shape broadcast into it (the key held only
    `grad is None`)."""
    rng = np.random.default_rng(2)
    a0 = rng.standard_normal((2, 3))

    def build():
        a = Tensor(a0, requires_grad=True)

        def mutate(i: int) -> None:  # calls 2 and 3 take the fast path
            if i == 4:
                a.grad = Tensor(np.ones(held))
            if i == 5:
                a.grad = Tensor(np.full((2, 3), 0.5))

        return lambda: (a * a).sum(), [a], mutate

    compare(build, calls=7)


@pytest.mark.parametrize("dtype", [np.float32])  # (Tensors hold float64 or float32 only)
def test_a_grad_of_another_dtype_is_the_eager_error_not_a_cast(dtype):
    def build():
        a = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)

        def mutate(i: int) -> None:
            if i == 4:
                a.grad = Tensor(np.ones((2, 3)), dtype=dtype)

        return lambda: (a * a).mean(), [a], mutate

    compare(build, calls=6)


def test_a_grad_that_is_not_a_tensor_is_refused_as_pytorch_does():
    """The eager engine happens to add to an array in `.grad`; the program would have frozen
    that array in as a constant. PyTorch refuses a `.grad` that is not a tensor: so does
    `compile`, by name."""
    a = Tensor(np.ones(3), requires_grad=True)
    step = compile(lambda: (a * a).sum())
    step()
    a.grad = np.ones(3)
    with pytest.raises(TypeError, match=r"\.grad.*ndarray"):
        step()
    a.grad = None
    step()  # and it recovers
    assert np.array_equal(a.grad.data, 2 * np.ones(3))


def test_minus_zero_and_zero_are_two_signatures():
    """0.0 == -0.0 (and they hash alike), so the key took one for the other, and 1/x gave +inf
    where eager gave -inf."""

    def cost(w: Tensor, s: float, t: tuple) -> Tensor:
        return (w * Tensor(np.ones(3)) / s + w * t[0]).sum()

    for first, second in [(0.0, -0.0), (-0.0, 0.0), (np.float64(0.0), np.float64(-0.0))]:
        w = Tensor(np.ones(3), requires_grad=True)
        step = compile(lambda s, t: cost(w, s, t))  # noqa: B023 (called in this loop)
        for s in [first, first, second, second, first]:
            twin = Tensor(np.ones(3), requires_grad=True)
            with np.errstate(divide="ignore"):
                want = cost(twin, s, (s,))
                want.backward()
                w.grad = None
                got = step(s, (s,))
            assert np.array_equal(got.data, want.data), (first, second, s)
            assert np.array_equal(w.grad.data, twin.grad.data)
            assert np.signbit(got.data) == np.signbit(want.data)
        assert step.traces == 2


@pytest.mark.parametrize("keep", ["array", "view", "row"])
def test_a_kept_gradient_array_is_never_overwritten(keep):
    """Only a kept gradient Tensor was noticed: a caller keeping `p.grad.data` (or a view of
    it) saw the next call write the next gradient into it. Eager never writes into a gradient
    it handed out."""
    rng = np.random.default_rng(3)
    w = Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    x = Tensor(rng.standard_normal((2, 3)))
    step = compile(lambda: (w * x * x).sum(), lr=0.1)
    kept: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(8):
        w.grad = None
        x.data = rng.standard_normal((2, 3))
        step()
        data = w.grad.data
        array = {"array": data, "view": data[:], "row": data[1]}[keep]
        kept.append((array, array.copy()))
        del data, array
        if i % 3 == 2:  # let the oldest go: its storage may be used again
            kept.pop(0)
        for array, values in kept:
            assert np.array_equal(array, values), i
    kept.clear()
    w.grad = None
    step()
    address = w.grad.data.__array_interface__["data"][0]
    w.grad = None
    step()  # nothing kept: the storage is reused, not made anew at each call
    assert w.grad.data.__array_interface__["data"][0] == address


@pytest.mark.filterwarnings("ignore:Setting the shape:DeprecationWarning")  # NumPy 2.5: on purpose
def test_in_place_layout_changes_of_captured_data_retrace():
    """`w.data.shape = (8,)` keeps the array object a parameter's `.data` is: the fast path
    found the identity unchanged and replayed the (2, 4) program (a (2, 4) gradient where eager
    gives (8,)). The layouts of constants were read already; those cases stay here too."""
    rng = np.random.default_rng(4)
    base = rng.standard_normal((2, 4))
    changes: list[Callable[[Tensor, Tensor], None]] = [
        lambda w, x: setattr(x.data, "shape", (1, 8)),  # the same array, another shape
        lambda w, x: setattr(x, "data", base[::-1]),  # negative strides
        lambda w, x: setattr(x, "data", np.asfortranarray(base + 1)),
        lambda w, x: setattr(w.data, "shape", (8,)),  # a parameter's, in place
    ]
    for change in changes:

        def build(change=change):
            w = Tensor(np.arange(8.0).reshape(2, 4), requires_grad=True)
            x = Tensor(base.copy())

            def mutate(i: int) -> None:
                w.grad = None
                if i == 2:
                    change(w, x)

            return lambda: (x.reshape(8) * w.reshape(8)).mean(), [w], mutate

        compare(build, calls=4, lr=0.5)


SCALE = 2.0  # rebound by the test below
SCALED = Tensor(np.ones(3), requires_grad=True)


def scaled_cost() -> Tensor:
    return (SCALED * SCALE).sum()


def test_a_global_rebound_to_a_new_number_never_replays_another_numbers_program():
    """A captured number was keyed by its id alone: once the float a program was traced with
    died, a new float could get its address and replay that program (about half of the calls
    here gave the old number's cost)."""
    global SCALE
    step = compile(scaled_cost)
    for i in range(100):
        SCALE = float(i % 7) + 0.5  # a new float object, often at a freed address
        SCALED.grad = None
        got = step()
        assert np.array_equal(got.data, np.asarray(3 * SCALE)), i
        assert np.array_equal(SCALED.grad.data, np.full(3, SCALE)), i
    assert step.traces == 7  # keyed by value: the same number again is the same program
    SCALE = 2.0


def test_numbers_and_arrays_inside_a_captured_container_are_part_of_the_signature():
    """A number or array one level inside a captured dict or object was not in the key: the
    program kept the value it was traced with."""
    rng = np.random.default_rng(7)
    x0 = rng.standard_normal(3)

    def build():
        w = Tensor(np.ones(3), requires_grad=True)
        cfg = {"scale": 2.0, "x": x0.copy()}

        def mutate(i: int) -> None:
            w.grad = None
            if i == 2:
                cfg["scale"] = 5.0
            if i == 3:
                cfg["x"] = x0 * 3  # a new array; an array changed in place is a constant, as
            if i == 4:  # in jax.jit
                cfg["scale"] = -0.0

        return lambda: (w * cfg["scale"] + w * cfg["x"]).sum(), [w], mutate

    step = compare(build, calls=6)
    assert step.traces == 4


def test_a_default_argument_tensor_is_read_at_every_call():
    """Defaults were not walked: a Tensor there was a constant of the program, its data
    replaced or edited in place unnoticed; a parameter there is now allowed too."""
    rng = np.random.default_rng(8)
    x0 = rng.standard_normal((2, 3))

    def build():
        w = Tensor(np.ones(3), requires_grad=True)
        x = Tensor(x0)

        def cost(x: Tensor = x, *, w: Tensor = w) -> Tensor:
            return (x * w).mean()

        def mutate(i: int) -> None:
            w.grad = None
            if i == 2:
                x.data = x0 + 1
            if i == 3:
                x.data[0, 0] = 7.0
            if i == 4:
                x.data = x0[:1]

        return cost, [w], mutate

    compare(build, calls=6, lr=0.5)


class Holder:
    def __init__(self, **attributes: Any) -> None:
        vars(self).update(attributes)


def deep_costs(w: Tensor, x: Tensor) -> dict[str, Callable[[], Tensor]]:
    """Cost functions that reach the constant `x` two or more levels deep."""
    in_dict = {"data": {"x": x}}
    in_object = Holder(data=Holder(x=x))
    in_list = [[x]]
    return {
        "dict": lambda: (w * in_dict["data"]["x"]).sum(),
        "object": lambda: (w * in_object.data.x).sum(),
        "list": lambda: (w * in_list[0][0]).sum(),
        "default": lambda pair=((x,),): (w * pair[0][0]).sum(),
    }


@pytest.mark.parametrize("nest", ["dict", "object", "list", "default"])
def test_a_constant_two_levels_deep_is_a_trace_error_not_a_frozen_copy(nest):
    """A Tensor two containers deep was copied into the program as a constant: replacing it,
    or its data, kept the old values. The key cannot walk every depth cheaply, so tracing now
    refuses it by name, as it refuses a parameter reached that way."""
    w = Tensor(np.ones(3), requires_grad=True)
    x = Tensor(np.arange(3.0))
    with pytest.raises(TraceError, match="two or more .* levels deep"):
        compile(deep_costs(w, x)[nest])()
    one_level = {"x": x}
    w.grad = None
    compile(lambda: (w * one_level["x"]).sum())()  # one level deep: read at every call
    assert np.array_equal(w.grad.data, x.data)


def test_a_partial_reads_its_tensors_at_every_call():
    """The arguments bound by functools.partial were not looked at: a parameter there was an
    error, a constant there a frozen copy."""

    def cost(w: Tensor, x: Tensor, scale: float) -> Tensor:
        return (w * x * scale).sum()

    rng = np.random.default_rng(9)
    x0 = rng.standard_normal(3)

    def build():
        w, x = Tensor(np.ones(3), requires_grad=True), Tensor(x0)
        settings = {"scale": 2.0}
        fn = functools.partial(cost, w, x, **settings)

        def mutate(i: int) -> None:
            w.grad = None
            if i == 2:
                x.data = x0 * 4
            if i == 3:
                fn.keywords["scale"] = 3.0

        return fn, [w], mutate

    step = compare(build, calls=5, lr=0.5)
    assert step.traces == 2


def test_another_thread_uses_shared_tensors_plainly_while_one_traces():
    """Tracing marks the arrays of the tensors it reads; another thread doing NumPy work on
    the same tensors (`np.mean(X.data)`) got the tracer's TraceError, though it traced
    nothing."""
    w = Tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    x = Tensor(np.ones((3, 3)))
    tracing, done = threading.Event(), threading.Event()
    seen: list = []

    def cost() -> Tensor:
        tracing.set()
        assert done.wait(10)  # the other thread works while this one traces
        return (w @ x).sum()

    def other() -> None:
        assert tracing.wait(10)
        try:
            seen.append(float(np.mean(x.data)))
            seen.append((w @ x).sum().item())
            seen.append(float(w.data[1, 1]) + w.data.tolist()[2][2])
        except Exception as error:  # the failure this test is about
            seen.append(error)
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    got = compile(cost)()
    thread.join()
    want = float((np.arange(9.0).reshape(3, 3) @ np.ones((3, 3))).sum())
    assert seen == [1.0, want, 12.0]
    assert np.array_equal(got.data, np.asarray(want))


@pytest.mark.parametrize("how", ["kept from before", "assigned and kept", "a view"])
def test_a_parameter_array_a_caller_sees_stays_the_parameters_data(how):
    """Compiling moved every parameter's values into flat storage and rebound `.data`: an
    array the caller still held (`d = w.data` before the first call, or `w.data = a` with `a`
    kept, or a view of a larger array) was cut loose, so editing it in place changed nothing
    and the update no longer reached it. Eager updates that very array in place. Now an array
    someone else sees stays the parameter's data, its values copied in and out at each call."""
    rng = np.random.default_rng(10)
    w0, x0 = rng.standard_normal(4), rng.standard_normal(4)

    def build():
        w = Tensor(w0, requires_grad=True)
        x = Tensor(x0)
        big = np.zeros((3, 4))
        seen = {"array": w.data}

        def mutate(i: int) -> None:
            w.grad = None
            if i == 1 and how == "assigned and kept":
                seen["array"] = np.full(4, 0.5)
                w.data = seen["array"]
            if i == 1 and how == "a view":
                big[1] = 0.25
                w.data = big[1]
                seen["array"] = big
            if i >= 2:
                seen["array"][...] += 1.0  # edited in place: eager's w sees it

        return lambda: (w * x * w).sum(), [w], mutate

    compare(build, calls=5, lr=0.25)


def test_an_array_only_the_parameter_holds_is_still_moved_into_flat_storage():
    w = Tensor(np.arange(4.0), requires_grad=True)
    step = compile(lambda: (w * w).sum(), lr=0.5)
    step()
    w.data = np.ones(4)  # nobody else holds it: copied in, the fast update applies
    w.grad = None
    step()
    assert np.array_equal(w.data, np.ones(4) - 0.5 * 2 * np.ones(4))
    assert w.data.base is step._last.stores[0].flat
    step()  # `.grad` held: another program, whose storage takes the parameter over
    assert step.traces == 2
    assert w.data.base is step._last.stores[0].flat and not step._last.kept


# ----- behaviour that was right: held here so that it stays right


def test_containers_reordered_or_refilled_and_a_tensor_in_two_places():
    rng = np.random.default_rng(5)
    a0, b0 = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))

    def build():
        a, b = Tensor(a0, requires_grad=True), Tensor(b0, requires_grad=True)
        ps = [a, b]

        def mutate(i: int) -> None:
            a.grad = b.grad = None
            if i == 1:
                ps.reverse()
            if i == 2:
                ps[1] = ps[0]  # one tensor in two places
            if i == 3:
                ps[:] = [a, b]

        return lambda: (ps[0] * 2.0 + ps[1] * ps[1]).sum(), [a, b], mutate

    compare(build, calls=5, lr=0.1)


def test_numbers_of_each_type_and_errstate_around_a_call():
    """1, 1.0, True, np.float32(1) are four signatures (their products differ in dtype or
    bits); overflow warns, raises or passes as eager's does, inside the sigmoid too."""

    def cost(w: Tensor, s: Any) -> Tensor:
        return (w.sigmoid() * s + (w * s).exp()).sum()

    def eager(s: Any) -> list[np.ndarray]:
        twin = Tensor(w.data.copy(), requires_grad=True)
        c = cost(twin, s)
        c.backward()
        return [c.data, twin.grad.data]

    def compiled(s: Any) -> list[np.ndarray]:
        w.grad = None
        return [step(s).data, w.grad.data]

    w = Tensor(np.array([-800.0, 0.5, 800.0]), requires_grad=True)
    step = compile(lambda s: cost(w, s))
    numbers = [1, 1.0, True, np.float32(1), np.int64(1), np.float32(0.1), 0.1, 1]
    for state in ["warn", "raise", "ignore"]:
        for s in numbers:
            with np.errstate(all=state), warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                want = outcome(functools.partial(eager, s))
                got = outcome(functools.partial(compiled, s))
            assert agree(want, got), (state, s, want, got)
            messages = [str(m.message) for m in seen]
            assert messages[: len(messages) // 2] == messages[len(messages) // 2 :], messages
    assert step.traces == 7


@pytest.mark.parametrize("loss", ["fused", "composed"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [1, 4, 7])
def test_tutorial_steps_with_the_update(loss, dtype, m):
    rng = np.random.default_rng(m)
    xs, ys = rng.standard_normal((2, m)), (rng.uniform(size=(1, m)) > 0.5).astype(float)

    def build():
        X, Y = fnn.as_tensor(xs, dtype, "X"), fnn.as_tensor(ys, dtype, "Y")
        params = fnn.initialize_parameters(2, 4, seed=m, dtype=dtype)

        def mutate(i: int) -> None:
            for p in params.values():
                p.grad = None

        return lambda: fnn.step_cost(X, Y, params, loss), list(params.values()), mutate

    compare(build, calls=6, lr=0.5)


@pytest.mark.parametrize("lr", [np.float64(0.1), np.int64(3), 0.1, np.float32(0.1), 2])
@pytest.mark.parametrize("fused", [True, False])
def test_the_update_computes_in_the_type_numpy_makes_of_lr_times_grad(lr, fused):
    """A NumPy float64 lr makes `lr * grad` of float32 gradients float64: fnn.SGD subtracts
    in float64 and rounds once; the flat update multiplied into a float32 buffer, rounding
    twice (other bits). An np.int64 lr, which fnn.SGD takes, was refused."""
    rng = np.random.default_rng(6)
    w0, x0 = rng.standard_normal(64), rng.standard_normal(64)
    twin = Tensor(w0, requires_grad=True, dtype=np.float32)
    x = Tensor(x0, dtype=np.float32)
    w = Tensor(w0, requires_grad=True, dtype=np.float32)
    step = compile(lambda: (w * x * w).sum(), lr=lr if fused else None)
    for i in range(4):
        twin.grad = w.grad = None
        (twin * x * twin).sum().backward()
        fnn.SGD([twin], lr).step()
        step()
        if not fused:
            step.sgd(lr)
        assert w.data.dtype == np.float32
        assert np.array_equal(w.data, twin.data), i
