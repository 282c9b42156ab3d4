"""Operations: the network volume's model index and flags, endpoint statistics and drift, warm-up, alerts."""
