"""scenechain: deployments."""
