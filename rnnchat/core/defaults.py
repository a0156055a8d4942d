"""The default of every sampling value, in one place: :class:`~rnnchat.core.params.SamplingParams`
takes its field defaults from here, and ``rnnchat generate`` its option defaults. A plain module
(no dataclass to build), so that ``rnnchat --help`` does not pay for SamplingParams."""

from __future__ import annotations

MAX_CHARS_LIMIT = 1_000_000

TEMPERATURE = 0.8
TOP_K = 0  # 0: off
TOP_P = 1.0  # 1.0: off
REPETITION_PENALTY = 1.0  # 1.0: off
MIN_P = 0.0  # 0: off; keeps characters with p >= min_p * p_max
PRESENCE_PENALTY = 0.0  # 0: off; OpenAI's: minus this for each character already in the reply
FREQUENCY_PENALTY = 0.0  # 0: off; OpenAI's: minus this times its count in the reply
MAX_CHARS = 1000
