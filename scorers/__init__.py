"""scenechain: scorers."""
