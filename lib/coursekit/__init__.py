"""coursekit: the library of the fine-tuning workshop kit, in two layers.

- `coursekit.harness`: the notebook harness. Running notebooks headlessly (parameters, run folders,
  the run record metrics.json), Slurm (submit, sweeps, preemption), containers, the device probe
  (`coursekit gpu`), the report and the slides. It never imports lesson code.
- `coursekit.lessons`: the lesson helpers. Corpora, models, evaluation and plots that the lesson
  notebooks repeat. They never import the harness: notebooks connect the two (e.g. they pass the
  harness's preemption callback into a Trainer).

`python -m coursekit --help` lists the command line.
"""
__version__ = "0.2.0"
