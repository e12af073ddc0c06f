"""vision apps."""
