"""The Playground's guided lessons (TensorFlow Playground's tutorials, ours): each is one link that sets
the page up and a few lines shown beside it, saying what to press and what to look for.

A lesson's link is `lesson=<name>` with its set-up written as any set-up is (only what differs from the
Playground's defaults), so it round-trips like every link: `lesson_link(LESSONS["xor"])` opens the
page on XOR without a hidden layer, with the XOR lesson's lines. The numbers the lines quote were
measured on these set-ups (seed 1, 4,000 steps).
"""

from dataclasses import dataclass, field

from backprop.profiles import PLAYGROUND

from .url_state import Classroom, classroom_link


@dataclass(frozen=True)
class Lesson:
    name: str  # its link's value: lesson=name
    title: str
    setup: dict  # setting -> link text, read by the Playground's profile
    lines: tuple  # Markdown, a few short lines
    hidden: tuple = field(default_factory=tuple)  # controls the lesson hides (a link can hide more)

    def config(self):
        """The lesson's set-up on the Playground (checked by its profile)."""
        return PLAYGROUND.config(**{name: PLAYGROUND.parse(name, text) for name, text in self.setup.items()})

    def classroom(self, hidden=(), text_hidden=False):
        return Classroom(frozenset(self.hidden) | frozenset(hidden), text_hidden, self.name)


LESSONS = {lesson.name: lesson for lesson in (
    Lesson("xor", "Why XOR needs a hidden layer", {"dataset": "xor", "layers": "1"}, (
        "XOR: the points are one class where x₁ and x₂ have the same sign, the other where they differ.",
        "Press **Train**. With no hidden layer the network is a linear model: its boundary is one straight "
        "line, and no line separates the quadrants. The test loss stays near 0.693 (a coin flip).",
        "**Pause**, press **+** beside *0 hidden layers* (a layer of 2 units) and **Train** again: two "
        "bent lines together cut the plane into the quadrants, and the loss falls (0.29 after 4,000 steps).",
        "Or keep no hidden layer and click **x₁·x₂** in the graph: one feature that is XOR already.",
    )),
    Lesson("circle-features", "Features that replace layers", {
        "dataset": "circle", "layers": "1", "features": "x1sq,x2sq"}, (
        "The circle's classes differ by the distance from the centre, and x₁² + x₂² is that distance "
        "squared.",
        "Press **Train**: with the features x₁² and x₂² and **no hidden layer**, a linear model draws a "
        "circle, and every test point is right within a few seconds (test loss 0.03).",
        "Now click x₁² and x₂² off and x₁, x₂ on in the graph: a straight line cannot. Add hidden layers "
        "(+) until the network finds the circle by itself: the layers build the features you gave it.",
    )),
    Lesson("learning-rate", "A learning rate too large", {"dataset": "circle", "learning_rate": "3"}, (
        "The network of the circle's first lesson, with a learning rate of **3** (the Playground starts "
        "at 0.03).",
        "Press **Train** and watch the loss chart: each step overshoots, the loss jumps up and down "
        "instead of falling, and the boundary flips about.",
        "The first layers' units saturate (their gradients, in the chart below, drop to about 1e-5) and "
        "the network settles far from the circle.",
        "Set the learning rate to **0.03** or **0.3** and press **Reset** then **Train**: it falls "
        "smoothly to nearly 0.",
    )),
    Lesson("vanishing-gradients", "Vanishing gradients in a deep sigmoid net", {
        "dataset": "circle", "layers": "8,8,8,8,8,8,1", "activation": "sigmoid"}, (
        "Six hidden layers of 8 **sigmoid** units on the circle, an easy problem.",
        "Press **Train**: the loss sits at 0.693 and the maps barely change. In the gradient chart the "
        "first layer's gradients are thousands of times smaller than the last's.",
        "Each sigmoid layer multiplies the backward signal by σ′ ≤ 0.25, so the first layers hardly learn.",
        "Switch the activation to **tanh** (σ′ up to 1) or **ReLU**: the same network learns the circle "
        "in a few hundred steps.",
    )),
)}


def lesson_link(lesson, base="playground", hidden=(), text_hidden=False):
    """The link that opens a lesson: its set-up, its name, and what it (and `hidden`) hides."""
    return classroom_link(lesson.config(), lesson.classroom(hidden, text_hidden), PLAYGROUND, base)
