"""How a run runs its jobs: cli.py (the command line a user typed, read at parse time),
settings.py (the settings each job receives as params), stage_code.py (which pqgrid code
each stage runs: a job reruns when it changes), run.py (a
rule's script calls `run_script`: its one function with keyword arguments, logged, warm or
cold), warm.py (one process imports TensorFlow for a local run's jobs to fork from), logs.py
(the job's log file and its one-line failure), tfsetup.py (a job's TensorFlow: threads, seed,
determinism). Imports core, no stage."""
