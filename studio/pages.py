"""The app's pages, in menu order: app.py builds its navigation from this list, and the tests read it."""

from dataclasses import dataclass


@dataclass(frozen=True)
class PageEntry:
    path: str  # the script, relative to the project root
    title: str
    icon: str


PAGES = (
    PageEntry("pages/train.py", "Train", ":material/model_training:"),
    PageEntry("pages/playground.py", "Playground", ":material/scatter_plot:"),
    PageEntry("pages/inspect.py", "Inspect", ":material/search:"),
    PageEntry("pages/math.py", "Math", ":material/functions:"),
    PageEntry("pages/gradients.py", "Gradient check", ":material/trending_down:"),
    PageEntry("pages/compare.py", "Compare runs", ":material/compare_arrows:"),
    PageEntry("pages/sweep.py", "Sweep", ":material/tune:"),
    PageEntry("pages/data.py", "Data", ":material/image:"),
)
