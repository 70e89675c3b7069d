"""Media at the edge: audio conversion (ffmpeg) and where Asterisk finds our files."""
