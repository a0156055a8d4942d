"""Training presets: sensible defaults for a ~1 MB text on a small CPU (torch-free)."""

PRESETS: dict[str, dict] = {
    # quick experiments; a few minutes on a laptop
    "small": dict(cell="lstm", layers=1, hidden=256, embedding=48, seq_len=100, batch_size=32, lr=6e-3,
                  dropout=0.0, carry_state=True),
    # what a user who only passes a corpus gets: tuned with benchmarks/train_quality.py (90 s, 2 cores,
    # 1 MB); one wide layer learns fastest in minutes. For an hour or more, use "large".
    "default": dict(cell="lstm", layers=1, hidden=512, embedding=64, seq_len=128, batch_size=16, lr=8e-3,
                    dropout=0.0, carry_state=True),
    # hours of training: the bundled model's shape
    "large": dict(cell="lstm", layers=2, hidden=512, embedding=64, seq_len=128, batch_size=32, lr=3e-3,
                  dropout=0.15, carry_state=True),
}
