"""text apps."""
