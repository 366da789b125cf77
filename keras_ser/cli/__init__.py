"""Console scripts. Nothing here imports TensorFlow at module level: `--help` stays fast."""
