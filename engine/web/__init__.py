"""HTTP adapters: health and metrics, JSON API, http.php, French pages."""
