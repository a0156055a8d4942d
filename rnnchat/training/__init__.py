"""Training support without torch: presets, a run's metrics and samples, runs on disk,
loss curves, the terminal report."""
