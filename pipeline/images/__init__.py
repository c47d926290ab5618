"""Image serving and uploads: the image views (Flask), upload validation (Pillow) and
private objects. Importing this package loads neither Flask nor Pillow."""
