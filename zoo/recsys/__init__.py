"""recsys apps."""
