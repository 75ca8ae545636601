"""The plots of `coursekit report` and notebook 05: phases, speed-ups, sweeps and curves of several runs."""
from __future__ import annotations

from . import record


def _label(info) -> str:
    return f"{info.notebook[:2]} {info.run}"


def phase_bars(ax, infos) -> None:
    """Stacked horizontal bars: the time of each phase, one bar per run, labelled with its device."""
    record.phase_bars(ax, [(f"{_label(i)}\n{i.device}", i.phases) for i in infos if i.phases])


def speedup_bars(ax, infos) -> None:
    """Speed-up of each completed run against the slowest comparable one."""
    infos = [i for i in infos if i.speedup]
    ax.barh([f"{_label(i)}\n{i.device}" for i in infos], [i.speedup for i in infos], color="tab:green")
    ax.axvline(1.0, color="gray", lw=1)
    ax.set_xlabel("速度比(最も遅い同条件の実行 = 1)")
    ax.set_title("スピードアップ")
    ax.invert_yaxis()


def metric_by_param(ax, infos, metric: str, param: str) -> None:
    """A metric against one parameter across runs (e.g. accuracy per learning rate of a sweep)."""
    points = sorted((i.params.get(param), i.metrics[metric]) for i in infos
                    if metric in i.metrics and i.params.get(param) is not None)
    xs = [str(x) for x, _ in points]
    ax.plot(xs, [y for _, y in points], "o", alpha=0.8)  # repeated runs of one setting stack up
    ax.set_xlabel(param)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} と {param}")


def overlay_curves(ax, infos, curve: str, key: str, x: str | None = None) -> None:
    """The same training curve (e.g. curve "loss", key "eval_loss") of several runs on one axes.
    The x axis is `x`, else "step" where the points have it, else "epoch"."""
    used = set()
    for info in infos:
        points = info.curves.get(curve, [])
        axis = x or ("step" if any("step" in p for p in points) else "epoch")
        points = [p for p in points if p.get(key) is not None and p.get(axis) is not None]
        if points:
            used.add(axis)
            ax.plot([p[axis] for p in points], [p[key] for p in points], marker=".", label=_label(info))
    ax.set_xlabel(" / ".join(sorted(used)) or (x or "step"))
    ax.set_ylabel(key)
    ax.set_title(f"{curve}: {key}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
