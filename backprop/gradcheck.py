"""Numeric against backpropagated gradients: the test that backprop is right.

Central differences cost two forward passes per parameter, so large layers are checked on a
seeded random sample of their entries rather than all of them.
"""

import numpy as np


def relative_error(numeric, analytic):
    """||a - b|| / (||a|| + ||b||): 0 for a perfect match, 1 for opposite signs.

    Taken over a whole layer's entries, so a tiny entry does not dominate the verdict.
    """
    numeric = np.asarray(numeric, dtype=np.float64).ravel()
    analytic = np.asarray(analytic, dtype=np.float64).ravel()
    scale = np.linalg.norm(numeric) + np.linalg.norm(analytic)
    if scale == 0.0:
        return 0.0
    return float(np.linalg.norm(numeric - analytic) / scale)


def gradient_check(network, X, Y, l2=0.0, l1=0.0, epsilon=1e-6, max_entries=200, seed=0):
    """Per layer: the relative error of dW and of db over the checked entries.

    Returns a list of dicts, one per layer: layer, dW_error, db_error, checked (entries).
    Work in float64 so that the numeric side is accurate: a float32 network is copied.
    """
    net = network.copy()
    if net.dtype != "float64":
        net = type(network)(**{**network.config(), "dtype": "float64"})
        net.set_params(network.params)
    X = np.asarray(X, dtype=np.float64)
    _, grads = net.loss_and_gradients(X, Y, l2=l2, l1=l1)
    grads = [(dW.copy(), db.copy()) for dW, db in grads]
    rng = np.random.default_rng(seed)
    report = []
    for l, ((W, b), (dW, db)) in enumerate(zip(net.params, grads, strict=True), start=1):
        errors = {}
        checked = 0
        for name, param, analytic in (("dW", W, dW), ("db", b, db)):
            flat = param.reshape(-1)
            count = min(flat.size, max_entries)
            picks = rng.choice(flat.size, size=count, replace=False)
            numeric = np.empty(count)
            for i, index in enumerate(picks):
                saved = flat[index]
                flat[index] = saved + epsilon
                plus = net.loss_and_gradients(X, Y, l2=l2, l1=l1)[0]
                flat[index] = saved - epsilon
                minus = net.loss_and_gradients(X, Y, l2=l2, l1=l1)[0]
                flat[index] = saved
                numeric[i] = (plus - minus) / (2 * epsilon)
            errors[name] = relative_error(numeric, analytic.reshape(-1)[picks])
            checked += count
        report.append({"layer": l, "dW_error": errors["dW"], "db_error": errors["db"],
                       "checked": checked})
    return report
