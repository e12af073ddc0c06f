"""audio apps."""
