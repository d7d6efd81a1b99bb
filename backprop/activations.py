"""Hidden-layer activations and their derivatives, as a small table of functions.

Each derivative is written in terms of the activation's *output* A (not Z), so the forward
pass only has to keep A for backpropagation. This holds for every function here: for ReLU
and leaky ReLU, A > 0 exactly where Z > 0.
Functions work in place where they can, because on the tutorial's 196 x 11272 layer the
element-wise passes cost as much as the matrix products.
"""

import numpy as np

LEAKY_SLOPE = 0.01


def sigmoid(Z, out=None):
    # 1 / (1 + e^-Z): for very negative Z e^-Z overflows to inf and the result is the exact 0.
    out = np.negative(Z, out=out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


def tanh(Z, out=None):
    return np.tanh(Z, out=out)


def relu(Z, out=None):
    return np.maximum(Z, 0.0, out=out)


def leaky_relu(Z, out=None):
    return np.maximum(Z, LEAKY_SLOPE * Z, out=out)


def linear(Z, out=None):
    """The identity: a layer that only mixes its inputs (a deep linear net is still linear)."""
    if out is None:
        return Z.copy()
    if out is not Z:
        np.copyto(out, Z)
    return out


def sigmoid_backward(A, dA):
    """dZ = dA * A(1 - A), written into dA."""
    dA *= A
    dA *= 1.0 - A
    return dA


def tanh_backward(A, dA):
    """dZ = dA * (1 - A^2), written into dA."""
    dA *= 1.0 - A * A
    return dA


def relu_backward(A, dA):
    # A multiply by the 0/1 mask is ~4x faster than masked assignment (dA[A <= 0] = 0).
    return np.multiply(dA, A > 0, out=dA)


def leaky_relu_backward(A, dA):
    dA[A <= 0] *= LEAKY_SLOPE
    return dA


def linear_backward(A, dA):
    """dZ = dA: the identity's derivative is 1."""
    return dA


def sigmoid_second(A):
    """f''(Z) = A(1 - A)(1 - 2A), from the output A like the first derivatives."""
    return A * (1.0 - A) * (1.0 - 2.0 * A)


def tanh_second(A):
    """f''(Z) = -2A(1 - A^2)."""
    return -2.0 * A * (1.0 - A * A)


def piecewise_linear_second(A):
    """f''(Z) = 0 away from the kink at Z = 0 (ReLU, leaky ReLU, the identity): None, so callers
    skip the term."""
    return None


# What can go wrong with a unit of each activation (unit health, backprop.health): a unit whose
# output is 0 (or negative) for Z <= 0 can die; a bounded one can saturate at its limits.
DEAD_KIND = ("relu", "leaky_relu")
SATURATING = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}  # (lower, upper) limit of the output
ACTIVATIONS = {"sigmoid": sigmoid, "tanh": tanh, "relu": relu, "leaky_relu": leaky_relu, "linear": linear}
BACKWARD = {
    "sigmoid": sigmoid_backward,
    "tanh": tanh_backward,
    "relu": relu_backward,
    "leaky_relu": leaky_relu_backward,
    "linear": linear_backward,
}

# Second derivatives f''(Z) in terms of A (Hessian-vector products, backprop.curvature); None where
# f'' is 0 everywhere it exists.
SECOND_DERIVATIVE = {
    "sigmoid": sigmoid_second,
    "tanh": tanh_second,
    "relu": piecewise_linear_second,
    "leaky_relu": piecewise_linear_second,
    "linear": piecewise_linear_second,
}


def softmax(Z):
    """Column-wise softmax (classes are rows, samples are columns)."""
    shifted = Z - Z.max(axis=0, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=0, keepdims=True)
    return shifted
