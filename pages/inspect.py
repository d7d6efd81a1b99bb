"""Inspect: what the current network gets right and wrong, and what each layer does with one image."""

import numpy as np
import streamlit as st

from studio.analysis_figures import (
    activation_figure,
    confusion_figure,
    confusion_matrix,
    image_figure,
    mosaic_figure,
    most_confident_wrong,
    probability_figure,
)
from studio.session import get_studio, route_through_app

route_through_app()  # a direct link to this page on a fresh server: go through app.py

st.title("Inspect")
studio = get_studio()
trainer = studio.trainer
if trainer is None:
    st.info("There is no network to inspect yet: set one up and train it on the Train page first.")
    st.stop()

with trainer.lock:
    network = trainer.network.copy()
    iteration = trainer.iteration
data = trainer.data
if len(data.y_test) == 0:
    st.warning("This data set has no test images, so there is nothing to inspect.")
    st.stop()

probabilities = network.predict_proba(data.x_test)
predicted = probabilities.argmax(axis=1)
names = [str(name) for name in data.class_names]
correct = int((predicted == data.y_test).sum())
left, middle, right = st.columns(3)
left.metric("Test accuracy", f"{correct / len(data.y_test):.2%}")
middle.metric("Test images wrong", f"{len(data.y_test) - correct:,} of {len(data.y_test):,}")
right.metric("After iterations", f"{iteration:,}")
if iteration == 0:
    st.caption("This network is untrained (iteration 0): its guesses are still random.")

counts = confusion_matrix(data.y_test, predicted, data.n_classes)
st.plotly_chart(confusion_figure(counts, names), key="inspect_confusion")

st.subheader("Most confidently wrong")
worst = most_confident_wrong(probabilities, data.y_test, k=8)
if len(worst) == 0:
    st.success("Every test image is classified correctly.")
elif data.image_shape is None:
    st.dataframe([{"test image": int(i), "true": names[data.y_test[i]], "predicted": names[predicted[i]],
                   "probability": float(probabilities[i, predicted[i]])} for i in worst])
else:
    labels = [f"#{i}: {names[predicted[i]]} {probabilities[i, predicted[i]]:.0%}"
              f"<br>(true {names[data.y_test[i]]})" for i in worst]
    images = data.x_test[worst].reshape(len(worst), *data.image_shape)
    st.caption("The test images the network gets wrong with the highest confidence. Above each: its "
               "test image number, the predicted class with its probability, and the true class.")
    st.plotly_chart(mosaic_figure(images, len(worst), "", column_labels=labels), key="inspect_wrong")

st.subheader("Look inside for one test image")
last = len(data.y_test) - 1
index = st.number_input(f"Test image number (0 to {last:,})", min_value=0, max_value=last,
                        value=int(worst[0]) if len(worst) else 0, step=1, key="inspect_index",
                        help="Start from one of the confidently wrong images above, or any test image.")
index = int(min(max(index, 0), last))  # a value kept from a larger data set must not index past the end
sample = data.x_test[index:index + 1]
activations = network.forward(sample)
true_class = int(data.y_test[index])
picture, bars = st.columns([1, 2])
with picture:
    if data.image_shape is not None:
        st.plotly_chart(image_figure(sample.reshape(data.image_shape), f"Test image {index}"),
                        key="inspect_image")
    st.write(f"True class: **{names[true_class]}**, predicted: **{names[predicted[index]]}** "
             f"({probabilities[index, predicted[index]]:.1%})")
with bars:
    st.plotly_chart(probability_figure(probabilities[index], names, true_class), key="inspect_proba")
hidden = activations[:-1]
for start in range(0, len(hidden), 2):  # two layers side by side: each chart has a sensible size
    for column, (layer, A) in zip(st.columns(2), enumerate(hidden[start:start + 2], start=start + 1),
                                  strict=False):
        with column:
            figure = activation_figure(A[:, 0], layer, network.n_layers)
            st.plotly_chart(figure, width="content" if "width" in figure["layout"] else "stretch",
                            key=f"inspect_layer_{layer}")
output = np.round(activations[-1][:, 0], 4).tolist()
st.caption(f"Output layer A[{network.n_layers}] = {output} "
           + ("(the probability of the second class)" if network.output == "sigmoid"
              else "(softmax: one probability per class)"))
