"""The built-in tasks with ground truth and `ugatit demo`, which trains and measures one of them.

- `shapes`, `truth`: the shapes task (scenes, their rendering in both domains, the truth they are
  scored by); `morph`: the morph task, scored alike.
- `options` (`DemoOptions`: what to run), `run` (`run_demo`: draw the task, train, measure against the
  truth) and `report`, its page.

Nothing is imported here: `ugatit.evaluation` reads the tasks' truth (`truth`, `morph`) and `run`
measures through `ugatit.evaluation`, so an import of this package pulling in `run` would close a circle.
"""
