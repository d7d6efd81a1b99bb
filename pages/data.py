"""Data: what the network learns from — sizes, classes, average images and samples."""

import streamlit as st

from backprop.data import dataset_facts, sample_images
from backprop.errors import InputError
from studio.analysis_figures import class_counts_figure, mosaic_figure
from studio.session import get_studio

st.title("Data")
studio = get_studio()
try:
    with st.spinner("Loading the data set..."):
        data = studio.trainer.data if studio.trainer is not None else studio.load_data()
except InputError as error:
    st.error(f"{error.field}: {error.message}")
    st.stop()

facts = dataset_facts(data)
st.caption("The data of the current set-up (change it on the Train page).")
columns = st.columns(4)
columns[0].metric("Data set", facts["name"])
columns[1].metric("Training images", f"{facts['n_train']:,}")
columns[2].metric("Test images", f"{facts['n_test']:,}")
columns[3].metric("Features", f"{facts['n_features']:,}")
names = facts["class_names"]
st.plotly_chart(class_counts_figure(names, facts["train_counts"], facts["test_counts"]), key="data_counts")

if facts["image_shape"] is None:
    st.info("These features are not images, so there are no pictures to show.")
    st.stop()
per_row = min(len(names), 10)
st.plotly_chart(mosaic_figure(facts["mean_images"], per_row, "The average training image of each class",
                              column_labels=names if len(names) <= per_row else None), key="data_means")

left, right = st.columns(2)
split = left.radio("Samples from", ["train", "test"], horizontal=True, key="data_split")
seed = int(right.number_input("Shuffle (seed)", min_value=0, max_value=10**6, value=0, key="data_seed"))
per_class = 10
images, labels = sample_images(data, per_class=per_class, seed=seed, split=split)
rows = [names[label] for label in labels[::per_class]] if len(labels) == per_class * len(names) else None
st.plotly_chart(mosaic_figure(images, per_class, f"Random {split} images, one class per row",
                              row_labels=rows), key="data_samples")
