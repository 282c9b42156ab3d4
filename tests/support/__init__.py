"""What every test suite shares: one `wait_until`, one fake clock, one set of fakes."""
