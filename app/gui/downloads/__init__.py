"""The Downloads screen (screen.py) and the controller that feeds it from the core's download
manager (worker.py: worker-thread callbacks → Qt signals on the UI thread)."""
