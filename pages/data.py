"""Data: what the network learns from (sizes, classes, average images, samples), more data sets to
download, and a person's own data to upload."""

import streamlit as st

from backprop.errors import InputError
from studio.analysis_figures import class_counts_figure, mosaic_figure
from studio.data_files import (
    IDX_HELP,
    current_data,
    data_facts,
    disk_use,
    download_dataset,
    download_rows,
    folder_name,
    list_uploads,
    sample_grid,
    save_upload,
    training_config,
)
from studio.label_review import (
    PER_PAGE,
    clear_edits,
    edits_of,
    edits_summary,
    exclude,
    gallery,
    last_review,
    relabel,
    restore,
    review_job,
    review_target,
    start_review,
    train_with_edits,
)
from studio.session import get_studio, route_through_app

route_through_app()  # a direct link to this page on a fresh server: go through app.py

st.title("Data")
studio = get_studio()


def show_current_data():
    try:
        with st.spinner("Loading the data set..."):
            data = current_data(studio)
    except InputError as error:
        st.error(f"**{error.field}**: {error.message}")
        return
    facts = data_facts(data)
    st.subheader(facts.name)  # in full: a metric would cut a long name short
    st.caption("The data of the current set-up (change it on the Train page).")
    columns = st.columns(4)
    columns[0].metric("Training images", f"{facts.n_train:,}")
    columns[1].metric("Test images", f"{facts.n_test:,}")
    columns[2].metric("Classes", f"{facts.n_classes:,}")
    columns[3].metric("Features", f"{facts.n_features:,}")
    names = facts.class_names
    st.plotly_chart(class_counts_figure(names, facts.train_counts, facts.test_counts), key="data_counts")
    if facts.image_shape is None:
        st.info("These features are not images, so there are no pictures to show.")
        return
    per_row = min(len(names), 10)
    st.plotly_chart(mosaic_figure(facts.mean_images, per_row, "The average training image of each class",
                                  column_labels=names if len(names) <= per_row else None),
                    key="data_means")
    left, right = st.columns(2)
    split = left.radio("Samples from", ["train", "test"], horizontal=True, key="data_split")
    seed = int(right.number_input("Shuffle (seed)", min_value=0, max_value=10**6, value=0,
                                  key="data_seed"))
    grid = sample_grid(data, per_class=10, seed=seed, split=split)
    st.plotly_chart(mosaic_figure(grid.images, grid.per_row, f"Random {split} images, one class per row",
                                  row_labels=grid.row_labels), key="data_samples")


def show_downloads():
    st.header("Download data sets")
    st.caption("MNIST ships with the app; these are fetched on demand and checked against their "
               "published SHA-256 sums (from a terminal: `python -m backprop data download NAME`).")
    for row in download_rows():
        name = row.name
        with st.container(border=True):
            text, action = st.columns([5, 1], vertical_alignment="center")
            text.markdown(f"**{name}**: {row.description}  \n"
                          f"Size: {row.size}. Credit and license: {row.credit}")
            if row.present:
                action.markdown(":green[:material/check_circle: Downloaded]")
                continue
            if action.button("Download", key=f"data_download_{name}"):
                st.session_state[f"data_download_result_{name}"] = fetch(name)
            result = st.session_state.get(f"data_download_result_{name}")
            if result is not None:  # kept until the next try, so other clicks do not hide it
                getattr(st, result.kind)(result.text)


def fetch(name):
    """Download with a progress bar (in this script run: a person asked for it and waits for it);
    returns the Notice to show."""
    bar = st.progress(0.0, text=f"{name}: connecting...")
    try:
        return download_dataset(name, bar.progress)
    finally:
        bar.empty()


def choose_earlier_upload():
    """The data sets this browser session uploaded (or was given by a link), by name and id."""
    uploads = {upload.id: upload for upload in list_uploads()}
    if uploads:
        st.selectbox("Or use a data set you uploaded earlier", list(uploads), index=None,
                     format_func=lambda upload_id: uploads[upload_id].label(), key="data_upload_earlier",
                     placeholder="choose an upload", on_change=pick_upload, args=(uploads,))


def pick_upload(uploads):
    chosen = st.session_state.get("data_upload_earlier")
    if chosen in uploads:
        st.session_state["data_upload"] = uploads[chosen]


def show_upload():
    st.header("Use your own data")
    st.markdown("Upload **one `.npz` file** with arrays `x` (n images: n × pixels or n × rows × cols) and "
                "`y` (n integer labels), optionally `x_test` and `y_test` (otherwise 1/7 of each class "
                f"is kept for testing), **or** {IDX_HELP}. Pixels: integers 0..255 or floats in [0, 1]. "
                "From a terminal: `python -m backprop train --dataset npz --data-path FILE`.")
    files = st.file_uploader("Data files", accept_multiple_files=True, key="data_upload_files")
    typed = st.text_input("Name for this data set", key="data_upload_name",
                          placeholder="the name of the first file")
    if st.button("Check and save", key="data_upload_save", disabled=not files):
        name = typed or (files[0].name.split(".")[0] if files else "")
        try:
            with st.spinner("Checking the files..."):
                upload = save_upload([(file.name, file.getvalue()) for file in files], folder_name(name))
        except InputError as error:
            st.session_state.pop("data_upload", None)
            st.error(f"**{error.field}**: {error.message}")
        else:
            st.session_state["data_upload"] = upload
            st.session_state["data_upload_saved"] = upload.id
    choose_earlier_upload()
    upload = st.session_state.get("data_upload")
    if upload is None:
        return
    classes = upload.class_names
    facts = (f"**{upload.name}** (id `{upload.id}`): {upload.n_train:,} training and {upload.n_test:,} "
             f"test images, classes {', '.join(classes)}.")
    if st.session_state.get("data_upload_saved") == upload.id:
        st.success(f"Saved {facts} Only this browser tab lists it; its id is its key: a link with "
                   f"`upload={upload.id}` opens it from another tab.")
    else:
        st.info(f"Chosen: {facts}")
    everything = f"All {len(classes)} classes"
    choice = st.radio("Learn", [everything, "Two classes"], horizontal=True, key="data_upload_classes")
    digits = None
    if choice != everything:
        left, right = st.columns(2)
        first = left.selectbox("First class (label 0)", classes, index=0, key="data_upload_first")
        second = right.selectbox("Second class (label 1)", classes, index=1, key="data_upload_second")
        digits = (int(first), int(second))
    if st.button("Use for training", key="data_upload_use", type="primary"):
        try:
            waiting = studio.propose(training_config(studio.config, upload, digits))
        except InputError as error:
            st.error(f"**{error.field}**: {error.message}")
        else:
            if waiting:
                st.success("The set-up now uses this data set: press **Reset** on the Train page to "
                           "build a new network on it.")
            else:
                st.success("The set-up now uses this data set: press **Train** on the Train page.")


def show_disk():
    st.header("Disk")
    try:
        use = disk_use()
    except InputError as error:
        st.error(f"**{error.field}**: {error.message}")
        return
    st.dataframe(use.rows, hide_index=True)
    (st.warning if use.over else st.caption)(use.summary)


def show_suspect_labels():
    """Images whose label a network that never saw them contradicts: find them, look at them, exclude or
    relabel them (a list kept beside the data set, never in its files), and train on the result."""
    st.header("Suspect labels")
    st.caption("Each training image is predicted by a network trained on the other folds (cross-validation, "
               "one Dask task per fold on a local cluster); cleanlab's confident learning then ranks the "
               "images whose given label those predictions contradict. Your decisions are kept as a list of "
               "label edits beside the data set; its files are never changed. From a terminal: "
               "`python -m backprop labels --dataset mnist`.")
    config = studio.pending or studio.config
    try:
        target = review_target(config)
    except InputError as error:
        st.info(f"**{error.field}**: {error.message}")
        return
    st.markdown(f"Data set: **{target.title}**, {target.n_train:,} training images (every class), id "
                f"`{target.key}`.")
    find_suspects_form(config, target)
    job = review_job(target.key)
    st.fragment(review_progress, run_every=1.0 if job is not None and job.running else None)(target.key)
    review = last_review(target)
    if review is None:
        return
    load = f", load average {review.load_average:.1f}" if review.load_average is not None else ""
    st.caption(f"Last review ({review.made_at} UTC): {review.dataset}, {review.folds} folds, out-of-fold "
               f"accuracy {review.accuracy:.2%}, {review.issues:,} suspects ranked by {review.rank_by}, "
               f"{review.seconds:.0f} s on {review.workers} workers{load}.")
    show_gallery(target, review)
    show_edits(target)


def find_suspects_form(config, target):
    left, middle, right = st.columns(3)
    folds = left.number_input("Folds", min_value=2, max_value=20, value=5, key="labels_folds")
    rank_by = middle.selectbox("Rank by", ["self_confidence", "normalized_margin"], key="labels_rank_by",
                               help="self_confidence: the probability of the given label; normalized_margin: "
                                    "that probability minus the largest other one. Lowest first.")
    subset = right.number_input("Training images (0: all)", min_value=0, max_value=target.n_train, value=0,
                                step=1000, key="labels_subset",
                                help="A stratified subset is quicker to review.")
    job = review_job(target.key)
    if st.button("Find suspect labels", key="labels_find", disabled=job is not None and job.running):
        try:
            start_review(config, folds=folds, rank_by=rank_by, subset=subset or None)
        except InputError as error:
            st.warning(f"**{error.field}**: {error.message}")


def review_progress(key):
    """The running review's progress and Cancel; one that ended reruns the page to show its result."""
    job = review_job(key)
    if job is None:
        return
    if job.running:
        st.progress(job.fraction, text=job.text())
        if st.button("Cancel", key="labels_cancel"):
            job.cancel()
        for line in job.lines:
            st.caption(line)
        st.session_state["labels_watching"] = True
    elif st.session_state.pop("labels_watching", False):
        st.rerun()
    elif job.error:
        st.warning(job.error)


def show_gallery(target, review):
    if not review.suspects:
        st.success("No suspects: every label agrees with the network that never saw its image.")
        return
    edits = edits_of(target)
    left, right = st.columns([3, 1])
    hide = right.toggle("Hide decided ones", key="labels_hide")
    page_count = gallery(target, review, edits, hide_edited=hide)[1]
    page = left.number_input(f"Page (of {page_count}, {PER_PAGE} a page)", min_value=1, max_value=page_count,
                             value=1, key="labels_page") - 1
    items, _ = gallery(target, review, edits, page=page, hide_edited=hide)
    names = {label: target.name(label) for label in target.labels}
    for row in range(0, len(items), 4):
        columns = st.columns(4)
        for column, item in zip(columns, items[row:row + 4], strict=False):
            with column.container(border=True):
                if item.image is not None:
                    st.image(item.image, width=84)
                st.markdown(item.caption)
                if item.status == "excluded":
                    st.markdown(":red[Excluded]")
                elif item.status == "relabelled":
                    st.markdown(f":orange[Relabelled {names[item.new_label]}]")
                buttons = st.columns(2)
                buttons[0].button("Exclude", key=f"labels_exclude_{item.index}",
                                  disabled=item.status == "excluded",
                                  on_click=decide, args=(exclude, target, review, item.index))
                buttons[1].button(f"Relabel {names[item.suggested]}", key=f"labels_relabel_{item.index}",
                                  disabled=item.new_label == item.suggested,
                                  on_click=decide, args=(relabel, target, review, item.index, item.suggested))
                other = f"labels_other_{item.index}"
                st.selectbox("Or label", list(names), index=None, format_func=names.get, key=other,
                             placeholder="or another label", label_visibility="collapsed",
                             on_change=relabel_chosen, args=(target, review, item.index, other))
                if item.status != "kept":
                    st.button("Restore", key=f"labels_restore_{item.index}",
                              on_click=decide, args=(restore, target, review, item.index))


def relabel_chosen(target, review, index, key):
    label = st.session_state.get(key)
    st.session_state[key] = None  # the list shows its placeholder again
    if label is not None:
        decide(relabel, target, review, index, label)


def decide(action, *args):
    try:
        action(*args)
    except InputError as error:
        st.session_state["labels_notice"] = ("warning", f"**{error.field}**: {error.message}")


def show_edits(target):
    edits = edits_of(target)
    notice = st.session_state.pop("labels_notice", None)
    if notice:
        getattr(st, notice[0])(notice[1])
    st.subheader("Label edits")
    in_use = (studio.pending or studio.config).label_edits
    using = f" The set-up trains on label edits `{in_use}`." if in_use else ""
    st.markdown(f"**{edits_summary(edits)}** (kept for this data set, never in its files).{using}")
    left, middle, right = st.columns(3)
    left.button("Retrain with these edits", key="labels_retrain", type="primary", disabled=not len(edits),
                on_click=retrain, args=(target, True))
    middle.button("Retrain without edits", key="labels_retrain_plain", disabled=not in_use,
                  on_click=retrain, args=(target, False))
    right.button("Clear the list", key="labels_clear", disabled=not len(edits), on_click=clear_edits,
                 args=(target,))


def retrain(target, use):
    """A fresh network of the set-up on the data set's edits (use) or on its labels as given."""
    try:
        edits_id = train_with_edits(studio, target, use=use)
    except InputError as error:
        st.session_state["labels_notice"] = ("warning", f"**{error.field}**: {error.message}")
        return
    what = (f"label edits `{edits_id}` ({edits_summary(edits_of(target))})" if edits_id
            else "the labels as given")
    st.session_state["labels_notice"] = ("success", f"Training from a fresh network on {what}: watch it on "
                                                    "the Train page.")


show_current_data()
show_downloads()
show_upload()
show_disk()
show_suspect_labels()
