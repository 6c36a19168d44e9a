"""scenechain: serve."""
