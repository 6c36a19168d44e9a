"""scenechain: bench."""
