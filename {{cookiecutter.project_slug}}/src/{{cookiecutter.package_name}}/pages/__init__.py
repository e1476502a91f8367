"""Pages of the app; each module exposes `render()`, registered in `main.py`."""
