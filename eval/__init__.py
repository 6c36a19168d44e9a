"""Quality evaluation: the toy world's independent judge and ``scenechain eval`` (advanced vs simple)."""
