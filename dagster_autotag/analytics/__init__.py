"""DuckDB views over the lake for analysts, and the asset that refreshes them."""
