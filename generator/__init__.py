"""scenechain: generator."""
