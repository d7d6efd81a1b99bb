"""Math: the equations of one training step, with the shapes of the current set-up's arrays."""

import streamlit as st

from studio.math_shapes import latex_matrix, setup_shapes, tiny_trace
from studio.session import get_studio, route_through_app

route_through_app()  # a direct link to this page on a fresh server: go through app.py

st.title("The math of one step")
studio = get_studio()
shapes = setup_shapes(studio)
softmax = studio.config.output == "softmax"

st.markdown("Samples are **columns**: $A^{[0]} = X^T$. For layers $l = 1 \\dots L$ with "
            "$n$ samples per step:")
st.latex(r"Z^{[l]} = W^{[l]} A^{[l-1]} + b^{[l]}, \qquad A^{[l]} = g(Z^{[l]})")
if softmax:
    st.latex(r"A^{[L]}_k = \frac{e^{Z^{[L]}_k}}{\sum_j e^{Z^{[L]}_j}}, \qquad "
             r"J = -\frac{1}{n} \sum_{i=1}^{n} \sum_k Y_{k,i} \log A^{[L]}_{k,i}")
    st.caption("Softmax output (more than two classes): Y holds one-hot columns.")
else:
    st.latex(r"A^{[L]} = \sigma(Z^{[L]}), \qquad J = -\frac{1}{n} \sum_{i=1}^{n} "
             r"\left[ y_i \log a_i + (1 - y_i) \log (1 - a_i) \right]")
st.markdown("Backward, from the output down. The $1/n$ of the mean cost is folded into the output "
            "layer's $dZ$ (as the engine does), so no later line divides by $n$ again:")
st.latex(r"dZ^{[L]} = \frac{1}{n}\left(A^{[L]} - Y\right)")
st.latex(r"dW^{[l]} = dZ^{[l]} \, A^{[l-1]T}, \qquad db^{[l]} = \sum_{\text{columns}} dZ^{[l]}")
st.latex(r"dA^{[l-1]} = W^{[l]T} dZ^{[l]}, \qquad dZ^{[l-1]} = dA^{[l-1]} \odot g'(Z^{[l-1]})")
st.latex(r"W^{[l]} \leftarrow W^{[l]} - \alpha \, dW^{[l]}, \qquad "
         r"b^{[l]} \leftarrow b^{[l]} - \alpha \, db^{[l]}")

st.subheader("Shapes in your set-up")
if shapes is None:
    st.info("Build or train a network on the Train page to see the shapes of your own set-up here.")
else:
    batch = "a mini-batch" if shapes.mini_batch else "the full training set"
    st.write(f"Layer sizes {shapes.sizes} (input first), {shapes.activation} hidden units, "
             f"n = {shapes.n_samples:,} samples per step ({batch}):")
    rows = shapes.table
    st.dataframe(rows, hide_index=True, height=35 * len(rows) + 40)  # every row, no inner scrolling

st.subheader("One step by hand: a 2-3-1 network on 4 samples")
activation = shapes.activation if shapes is not None else "sigmoid"
trace = tiny_trace(activation)
st.caption(f"Hidden activation g = {activation}, sigmoid output; seeded weights. Every number below "
           "comes from the equations above and matches the engine's own gradients.")
for name, equation in (("X^T = A^{[0]}", "A0"), ("W^{[1]}", "W1"),
                       ("Z^{[1]} = W^{[1]} A^{[0]} + b^{[1]}", "Z1"),
                       ("A^{[1]} = g(Z^{[1]})", "A1"), ("W^{[2]}", "W2"),
                       ("Z^{[2]} = W^{[2]} A^{[1]} + b^{[2]}", "Z2"), ("A^{[2]} = \\sigma(Z^{[2]})", "A2"),
                       ("Y", "Y"), ("dZ^{[2]} = (A^{[2]} - Y)/4", "dZ2"),
                       ("dW^{[2]} = dZ^{[2]} A^{[1]T}", "dW2"), ("db^{[2]}", "db2"),
                       ("dA^{[1]} = W^{[2]T} dZ^{[2]}", "dA1"),
                       ("dZ^{[1]} = dA^{[1]} \\odot g'(Z^{[1]})", "dZ1"),
                       ("dW^{[1]} = dZ^{[1]} A^{[0]T}", "dW1"), ("db^{[1]}", "db1")):
    st.latex(f"{name} = {latex_matrix(trace[equation])}")
st.latex(f"J = {trace['cost']:.4f}")
