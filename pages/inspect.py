"""Inspect: what the current network gets right and wrong, what each layer does with one image
(a test image or a digit you draw), its units' health and activations over training, and the
loss landscape around its weights with the path training took."""

import numpy as np
import streamlit as st

from backprop.drawing import FIELD
from backprop.errors import InputError
from backprop.landscape import MAX_RESOLUTION, MIN_RESOLUTION
from studio.analysis_figures import (
    activation_figure,
    activation_histogram_figure,
    confusion_figure,
    confusion_matrix,
    image_figure,
    landscape_figure,
    mosaic_figure,
    probability_figure,
    unit_health_figure,
)
from studio.diagnostics import unit_health_line
from studio.inspection import drawn_digit, inspect_network
from studio.landscapes import start_landscape
from studio.session import get_studio, route_through_app
from studio.url_state import plain

CANVAS_SIDE = 280  # pixels: 10x the network's 28, a comfortable size for a mouse or a finger
STROKE_WIDTH = 20  # on the 280-px canvas: about 2 px at 28, like MNIST's pen

route_through_app()  # a direct link to this page on a fresh server: go through app.py

st.title("Inspect")
studio = get_studio()
inspection = inspect_network(studio)
if inspection is None:
    st.info("There is no network to inspect yet: set one up and train it on the Train page first.")
    st.stop()

iteration = inspection.iteration
data = inspection.data
names = inspection.class_names
n_layers = inspection.n_layers


def layer_views(activations, key):
    """Every hidden layer's activations for one sample, two charts a row, and the output."""
    hidden = activations[:-1]
    for start in range(0, len(hidden), 2):  # two layers side by side: each chart has a sensible size
        for column, (layer, A) in zip(st.columns(2), enumerate(hidden[start:start + 2], start=start + 1),
                                      strict=False):
            with column:
                figure = activation_figure(A[:, 0], layer, n_layers)
                st.plotly_chart(figure, width="content" if "width" in figure["layout"] else "stretch",
                                key=f"{key}_layer_{layer}")
    output = np.round(activations[-1][:, 0], 4).tolist()
    st.caption(f"Output layer A[{n_layers}] = {output} "
               + ("(the probability of the second class)" if inspection.output == "sigmoid"
                  else "(softmax: one probability per class)" if inspection.output == "softmax" else ""))


def test_set_views():
    """Accuracy, confusion matrix, the most confidently wrong images and a look inside one."""
    results = inspection.test_results(worst=8)
    probabilities, predicted = results.probabilities, results.predicted
    left, middle, right = st.columns(3)
    left.metric("Test accuracy", f"{results.accuracy:.2%}")
    middle.metric("Test images wrong", f"{results.total - results.correct:,} of {results.total:,}")
    right.metric("After iterations", f"{iteration:,}")
    if iteration == 0:
        st.caption("This network is untrained (iteration 0): its guesses are still random.")

    counts = confusion_matrix(data.y_test, predicted, data.n_classes)
    st.plotly_chart(confusion_figure(counts, names), key="inspect_confusion")

    st.subheader("Most confidently wrong")
    worst = results.worst
    if len(worst) == 0:
        st.success("Every test image is classified correctly.")
    elif data.image_shape is None:
        st.dataframe([{"test image": int(i), "true": names[data.y_test[i]],
                       "predicted": names[predicted[i]], "probability": float(probabilities[i, predicted[i]])}
                      for i in worst])
    else:
        labels = [(f"#{i}: {names[predicted[i]]} {probabilities[i, predicted[i]]:.0%}",
                   f"(true {names[data.y_test[i]]})") for i in worst]  # two lines each
        images = data.x_test[worst].reshape(len(worst), *data.image_shape)
        st.caption("The test images the network gets wrong with the highest confidence. Above each: its "
                   "test image number, the predicted class with its probability, and the true class.")
        st.plotly_chart(mosaic_figure(images, len(worst), "", column_labels=labels), key="inspect_wrong")

    st.subheader("Look inside for one test image")
    last = len(data.y_test) - 1
    index = st.number_input(f"Test image number (0 to {last:,})", min_value=0, max_value=last,
                            value=int(worst[0]) if len(worst) else 0, step=1, key="inspect_index",
                            help="Start from one of the confidently wrong images above, or any test image.")
    index = int(min(max(index, 0), last))  # a value kept from a larger data set must not index past it
    sample = data.x_test[index:index + 1]
    activations = inspection.layer_outputs(sample).activations
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
    layer_views(activations, "inspect")


def drawn_digit_views():
    """A canvas to draw on; the drawing prepared like MNIST and run through the network."""
    from streamlit_drawable_canvas import st_canvas  # registers its component: only inside a run

    st.caption("Draw with the mouse or a finger (white on black, like MNIST). It is cropped, scaled to "
               "20 pixels on its longer side and centred by its centre of mass in 28 x 28, the way "
               "MNIST's digits were made, then run through the network as it is now.")
    st.html('<div style="height: 1.6rem"></div>')  # room for the canvas's toolbar, which sits above it
    canvas, seen = st.columns([1, 1])
    with canvas:
        result = st_canvas(stroke_width=STROKE_WIDTH, stroke_color="#FFFFFF", background_color="#000000",
                           height=CANVAS_SIDE, width=CANVAS_SIDE, drawing_mode="freedraw",
                           return_image_data=True, key="draw_canvas")
    try:
        digit = drawn_digit(result.image_bytes, result.image_data)
    except InputError as error:
        st.error(f"{error.field}: {error.message}")
        return
    if digit is None:
        with seen:
            st.info("Draw a digit on the canvas: the network's answer appears here.")
        return
    outputs = inspection.layer_outputs(digit.reshape(1, -1))
    probabilities = outputs.probabilities
    best = int(probabilities.argmax())
    with seen:
        st.plotly_chart(image_figure(digit, f"As the network sees it ({FIELD}x{FIELD})", height=240),
                        key="draw_input")
        st.markdown(f"The network says: **{names[best]}** ({probabilities[best]:.1%})")
    st.plotly_chart(probability_figure(probabilities, names), key="draw_proba")
    layer_views(outputs.activations, "draw")


def health_views():
    """Unit health and the activations' spread over the recorded steps."""
    condition = inspection.health_condition
    if n_layers < 2:
        st.caption("This network has no hidden layer: there are no hidden units to look at.")
        return
    if condition is None:
        st.caption(f"{inspection.activation} units are never dead or saturated.")
    else:
        st.plotly_chart(unit_health_figure(inspection.health_iterations, inspection.unit_health,
                                           inspection.activation, height=320), key="inspect_unit_health")
        reading = unit_health_line(inspection.unit_health, inspection.health_iterations, studio.config,
                                   inspection.n_layers)
        st.caption(reading or f"No layer is mostly {condition}: a unit counts as "
                   + ("dead when it is zero for every sample of the batch."
                      if condition == "dead" else "saturated when its output is within 1% of a limit "
                      "for most samples; sigmoid'(Z) < 0.01 there."))
    records = inspection.activation_records
    layer = st.selectbox("Layer", range(n_layers - 1), format_func=lambda l: f"hidden layer {l + 1}",
                         key="inspect_histogram_layer")
    layer = min(int(layer), n_layers - 2)
    st.plotly_chart(activation_histogram_figure(records.iterations, records.low, records.high, records.shares,
                                                layer), key="inspect_activation_histograms")


def landscape_views():
    plane_names = {"random": "around the weights now (two random directions)",
                   "pca": "over the path training took (PCA of the weights along the run)"}
    left, middle, right = st.columns([2, 2, 1])
    kind = left.radio("Plane", list(plane_names), format_func=plane_names.get, key="landscape_kind")
    sides = list(range(MIN_RESOLUTION, MAX_RESOLUTION + 1, 2))
    resolution = middle.select_slider("Grid points per side", sides, value=25, key="landscape_resolution",
                                     help="Each point is one forward pass over 2,000 training images.")
    seed = right.number_input("Directions seed", min_value=0, max_value=2**31 - 1, value=0, step=1,
                              key="landscape_seed", disabled=kind != "random",
                              help="Another seed draws two other random directions.")
    job = st.session_state.get("landscape_job")
    if st.button("Compute landscape", key="landscape_compute", disabled=job is not None and job.running):
        try:
            st.session_state.landscape_job = start_landscape(studio, inspection, kind, resolution, seed)
        except InputError as error:
            st.warning(f"**{error.field}**: {plain(error.message)}")
    job = st.session_state.get("landscape_job")
    # Redrawn every half second only while a job runs; one that finishes triggers a full run,
    # which draws its result with no more polling.
    st.fragment(landscape_progress, run_every=0.5 if job is not None and job.running else None)()


def landscape_progress():
    """The running job's progress and Cancel, then its picture."""
    job = st.session_state.get("landscape_job")
    if job is None:
        return
    if not job.belongs_to(studio):  # a Reset or a new run since
        job.cancel()
        st.session_state.landscape_job = None
        return
    if not job.running and st.session_state.get("landscape_polling"):
        st.session_state.landscape_polling = False
        st.rerun()
    if job.running:
        st.session_state.landscape_polling = True
        st.progress(job.done / job.total, text=f"Computing the {job.kind} plane: row {job.done} of "
                                               f"{job.total} ({job.resolution} x {job.resolution} points)")
        if st.button("Cancel", key="landscape_cancel"):
            job.cancel()
        return
    if job.error is not None:
        st.error(f"The landscape stopped: {job.error}")
        return
    job.keep()  # a complete one is kept with the run: its checkpoint carries it to Compare
    landscape = job.result
    st.plotly_chart(landscape_figure(landscape), key="landscape_chart")
    done = "" if landscape.complete else " Cancelled: the rest of the grid was not computed."
    st.caption(f"Cost on a fixed sample of {landscape.samples:,} training images at iteration "
               f"{landscape.iteration:,}: {landscape.center_cost:.5f} at the centre (the star). "
               f"{int(np.isfinite(landscape.costs).sum()):,} of {landscape.costs.size:,} points in "
               f"{landscape.seconds:.1f} s.{done}"
               + (" Li et al. (2018): filter-normalised directions, so a step of 1 changes each "
                  "unit's weights by their own size." if landscape.kind == "random" else ""))


if inspection.classifies and len(data.y_test):
    test_set_views()
elif inspection.classifies:
    st.warning("This data set has no test images: the test-set views are left out.")

if inspection.classifies and data.image_shape == (FIELD, FIELD):
    st.subheader("Draw a digit")
    drawn_digit_views()

st.subheader("Unit health and activations over training")
health_views()

st.subheader("Loss landscape")
st.caption("The cost over a plane of weights through the network's weights now (Li, Xu, Taylor, Studer "
           "and Goldstein, 2018). A sharp, narrow valley or a flat one, and how training moved across it.")
landscape_views()
