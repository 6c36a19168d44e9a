"""scenechain: the public Python client and storyboard exports."""
