"""scenechain: agents."""
