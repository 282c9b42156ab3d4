"""How serious a finding is (volume flags, training-set readiness): the words, and their order in lists."""

ERROR, WARNING, INFO = "error", "warning", "info"
RANK = {ERROR: 0, WARNING: 1, INFO: 2}   # most serious first
