"""Training: a shared floor and one room per system.

    data.py      manifest → records → folds → tf.data pipelines (every system's data)
    loop.py      fit with checkpoints and resume, the fold loop, prediction, the distribution
                 strategy, and `finish`: the tail every run shares (summary, export, headline)
    workers.py   train.strategy=multi_worker: the strategy, the epoch loop Keras's fit cannot
                 run under it, the chief's files and the other workers' scratch copies
    registry.py  the systems by name: `register`, `get`
    runner.py    `run(cfg)`: the one entry point (output folder, config checks, dispatch
                 through the registry, metrics.json)
    mlee.py, strengthnet.py, epr.py, fg_cme.py, functionals.py
                 one module per system: each imports `data` and `loop` and registers itself;
                 neither `data` nor `loop` nor `runner` imports a system
    metrics.py, protocols.py, plots.py
                 pure functions: metrics, folds, figures

    from keras_ser.config import load_config
    from keras_ser.training.runner import run
    summary = run(load_config("mlee/synthetic", ["data.synthetic_size=tiny", "train.epochs=2"]))

Importing this package imports nothing else.
"""
