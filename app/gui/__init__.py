"""The Qt face over app.core: widgets, view models and the threads that keep the UI responsive."""
