"""rl apps."""
