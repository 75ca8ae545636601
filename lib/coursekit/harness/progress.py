"""Progress in the job's log: one plain line every so often while a long phase runs.

Under `sbatch`, a notebook's progress bars are widgets (or go to stderr) and a long training cell
prints nothing to `logs/%x-%j.log` for minutes: a student watching `tail -f` cannot tell a slow job
from a hung one. These helpers print one line to stdout at most every `every` seconds (and at the
end); papermill forwards the kernel's stdout to the runner's stdout, line by line, which is the
job's log:

    [fine-tune] step 120/420 (29%) epoch 1/6 loss 1.93 | 1 min 05 s elapsed, ~2 min 42 s left

    from coursekit.harness import progress
    model.fit(..., callbacks=[early_stop, progress.KerasProgress("fine-tune")])       # Keras
    Trainer(..., callbacks=[progress.TrainerProgress("train")])                        # transformers
    for batch in progress.progress(batches, total=len(batches), what="translate"): ...  # any loop

The frameworks are imported only when their callback is made (as in `preemption`). The interval is
`every` seconds, else $COURSEKIT_PROGRESS_EVERY, else 30 s. Lesson helpers never import the
harness: a helper with a long loop takes an optional `progress=` argument and the notebook passes
`progress.progress` in.
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Callable, Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")
ENV_EVERY = "COURSEKIT_PROGRESS_EVERY"  # seconds between lines (a run's environment may change it)
DEFAULT_EVERY = 30.0


def interval(every: float | None = None) -> float:
    """Seconds between two lines: `every`, else $COURSEKIT_PROGRESS_EVERY, else 30."""
    if every is not None:
        return max(0.0, float(every))
    try:
        return max(0.0, float(os.environ.get(ENV_EVERY, DEFAULT_EVERY)))
    except ValueError:
        return DEFAULT_EVERY


def _duration(seconds: float) -> str:
    from .timing import format_seconds

    return format_seconds(max(0.0, seconds))


def _value(v: Any) -> str | None:
    """A loss or metric as a short string (tensors and numpy scalars too); None when not a number."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None if not isinstance(v, str) else v
    if math.isnan(x) or math.isinf(x):
        return str(x)
    return f"{x:.4g}"


class Progress:
    """Throttled one-line progress reports: `update(done)` prints at most every `every` seconds
    (the first update at once), `finish(done)` always prints. The rate (and the time left) counts
    the steps after `base_done` (0; a resumed training sets the step it resumed at)."""

    def __init__(self, what: str, total: int | None = None, every: float | None = None, unit: str = "step",
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.what, self.total, self.unit = what, (int(total) if total else None), unit
        self.every = interval(every)
        self.stream, self.clock = stream, clock
        self.started = clock()
        self.base_done = 0
        self.last_print: float | None = None
        self.lines = 0

    def line(self, done: int, now: float | None = None, **values: Any) -> str:
        now = self.clock() if now is None else now
        head = f"[{self.what}] {self.unit} {done}"
        if self.total:
            head += f"/{self.total} ({100 * done / self.total:.0f}%)"
        shown = [f"{k} {s}" for k, v in values.items() if v is not None and (s := _value(v)) is not None]
        text = " ".join([head, *shown]) + f" | {_duration(now - self.started)} elapsed (経過)"
        rate_steps, rate_time = done - self.base_done, now - self.started
        if self.total and done < self.total and rate_steps > 0 and rate_time > 0:
            text += f", ~{_duration((self.total - done) * rate_time / rate_steps)} left (残り)"
        return text

    def update(self, done: int, force: bool = False, **values: Any) -> str | None:
        """Print a line when `every` seconds have passed since the last one (or when forced)."""
        now = self.clock()
        if not force and self.last_print is not None and now - self.last_print < self.every:
            return None
        text = self.line(done, now, **values)
        print(text, file=self.stream or sys.stdout, flush=True)
        self.last_print, self.lines = now, self.lines + 1
        return text

    def finish(self, done: int, **values: Any) -> str:
        """The last line: always printed."""
        return self.update(done, force=True, **values) or ""


def progress(iterable: Iterable[T], total: int | None = None, what: str = "loop", every: float | None = None,
             unit: str = "item") -> Iterator[T]:
    """Yield the items of `iterable`, printing `[what] item i/total ... elapsed, left` as it goes
    (the first item done, then at most every `every` seconds, then at the end)."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    bar = Progress(what, total, every, unit=unit)
    done = 0
    try:
        for item in iterable:
            yield item
            done += 1
            bar.update(done)
    finally:  # also when the loop stops early (break, an error)
        bar.finish(done)


def KerasProgress(what: str = "fit", every: float | None = None):  # noqa: N802 - reads like the class
    """A Keras callback for `model.fit` / `model.predict` / `model.evaluate`: a line per `every`
    seconds (step/total, epoch, loss), one at the end of each epoch (with the validation values)
    and one at the end. TensorFlow is imported only when this is called (use tf.keras as the
    notebook set it up: TF_USE_LEGACY_KERAS before the first import)."""
    import tensorflow as tf

    class _KerasProgress(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._supports_tf_logs = True  # no conversion of every batch's logs: values read when printed
            self.fitting = False
            self.epoch, self.done = 0, 0
            self.bar: Progress | None = None

        def _steps(self):
            steps = (self.params or {}).get("steps")
            return int(steps) if steps else None

        # training
        def on_train_begin(self, logs=None):
            self.fitting, self.done = True, 0
            steps, epochs = self._steps(), (self.params or {}).get("epochs")
            self.bar = Progress(what, steps * epochs if steps and epochs else None, every)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def _epoch(self):
            return f"{self.epoch + 1}/{(self.params or {}).get('epochs', '?')}"

        def on_train_batch_end(self, batch, logs=None):
            self.done += 1
            self.bar.update(self.done, epoch=self._epoch(), loss=(logs or {}).get("loss"))

        def on_epoch_end(self, epoch, logs=None):
            self.bar.update(self.done, force=True, epoch=self._epoch() + " done", **dict(logs or {}))

        def on_train_end(self, logs=None):
            self.fitting = False
            self.bar.finish(self.done, finished="fit")

        # prediction and evaluation outside fit (validation inside fit is summed up at the epoch end)
        def _begin(self, name):
            if not self.fitting:
                self.side = Progress(f"{what}: {name}", self._steps(), every, unit="batch")
                self.side_done = 0

        def _batch(self, logs):
            if not self.fitting:
                self.side_done += 1
                self.side.update(self.side_done, loss=(logs or {}).get("loss"))

        def _end(self, logs):
            if not self.fitting:
                self.side.finish(self.side_done, **{k: v for k, v in dict(logs or {}).items() if k != "outputs"})

        def on_predict_begin(self, logs=None):
            self._begin("predict")

        def on_predict_batch_end(self, batch, logs=None):
            if not self.fitting:
                self.side_done += 1
                self.side.update(self.side_done)

        def on_predict_end(self, logs=None):
            self._end(None)

        def on_test_begin(self, logs=None):
            self._begin("evaluate")

        def on_test_batch_end(self, batch, logs=None):
            self._batch(logs)

        def on_test_end(self, logs=None):
            self._end(logs)

    return _KerasProgress()


def _last(history: list[dict], key: str):
    for row in reversed(history or []):
        if key in row:
            return row[key]
    return None


def TrainerProgress(what: str = "train", every: float | None = None):  # noqa: N802 - reads like the class
    """A transformers TrainerCallback: a line per `every` seconds while training (step/max_steps,
    epoch, the last logged loss), a line after each evaluation (eval_loss), lines while a long
    evaluation runs, and one at the end. A resumed run counts its speed from the step it resumed
    at. transformers is imported only when this is called."""
    from transformers import TrainerCallback

    class _TrainerProgress(TrainerCallback):
        def __init__(self):
            self.bar: Progress | None = None
            self.eval_bar: Progress | None = None
            self.eval_done = 0
            self.resumed = False

        def on_train_begin(self, args, state, control, **kwargs):
            self.bar = Progress(what, state.max_steps or None, every)
            self.resumed = False

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is None:  # a callback added after train() started
                self.on_train_begin(args, state, control)
            if not self.resumed:  # the first step of this attempt: earlier steps do not count in the rate
                self.bar.base_done, self.resumed = state.global_step - 1, True  # rate from train begin
            self.bar.total = state.max_steps or self.bar.total
            self.bar.update(state.global_step, epoch=round(state.epoch, 2) if state.epoch is not None else None,
                            loss=_last(state.log_history, "loss"))

        def on_prediction_step(self, args, state, control, **kwargs):
            if self.eval_bar is None:
                loader = kwargs.get("eval_dataloader")
                try:
                    total = len(loader) if loader is not None else None
                except TypeError:
                    total = None
                self.eval_bar, self.eval_done = Progress(f"{what}: evaluate", total, every, unit="batch"), 0
            self.eval_done += 1
            self.eval_bar.update(self.eval_done)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            metrics = metrics or {}
            shown = {k: v for k, v in metrics.items() if k.endswith("loss")}
            bar = self.eval_bar or Progress(f"{what}: evaluate", None, every, unit="batch")
            bar.finish(self.eval_done, at_step=state.global_step, **shown)
            self.eval_bar, self.eval_done = None, 0

        def on_predict(self, args, state, control, metrics=None, **kwargs):
            self.on_evaluate(args, state, control, metrics=metrics, **kwargs)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.finish(state.global_step, loss=_last(state.log_history, "loss"),
                                train_loss=_last(state.log_history, "train_loss"))

    return _TrainerProgress()
