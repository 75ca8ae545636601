"""The notebook harness: run notebooks headlessly and keep their records; Slurm, containers, reports.

| module | does |
|---|---|
| params | a notebook's parameters: the cell's literals, profile files, checks |
| runner | `coursekit run`: papermill execution into a run folder, HTML export, outcome |
| record | the run record metrics.json: phases, metrics, curves, figures |
| runs | run folders: runs/<notebook>/<job id or time>/ |
| preemption | Slurm's warning signal: checkpoint, stop, requeue, resume |
| slurm | `coursekit submit`: sbatch with preflight checks |
| sweep | `coursekit sweep`: one task of a job-array grid |
| containers | `coursekit build-container`: check and build defs/*.def |
| device | `coursekit gpu`: what the frameworks see, the classic traps |
| report, report_plots | `coursekit report`: every run in one table, and its plots |
| slides | `coursekit slides`: decks filled from results files |
| timing | stopwatch, readable durations |
| progress | one-line progress for the job log (loops, Keras and Trainer callbacks) |
| threads | the thread count the job was given, for the kernel |
| distributed | several processes under srun: ranks, rank 0 records, master address and ports |
| utilisation | GPU (NVML) or CPU utilisation sampled while a notebook runs |
"""
